"""How much the switch to routing changes a PCENet: per block, the routed output against
phase 1's output on the same input."""
from typing import List, Tuple

import torch

from ..models import PCEBlock, PCENet
from ..models.phase import WARMUP

__all__ = ['switch_gap']


@torch.no_grad()
def switch_gap(backbone: PCENet, x: torch.Tensor) -> List[Tuple[str, float]]:
    """``[(block name, ||y_routed - y_warm|| / ||y_warm||), ...]`` in forward order, in eval
    mode, each block fed the routed model's input. A model that trained in phase 1 and has
    not switched yet switches first, on ``x``, as its first routed batch would."""
    backbone.eval()
    if backbone.last_phase == WARMUP and not backbone.switched:
        backbone.switch_to_routing(x)
    names = {module: name for name, module in backbone.named_modules()}
    gaps = []
    x = backbone.stem(x)
    for layer in backbone.res_layers:
        for module in getattr(backbone, layer):
            if isinstance(module, PCEBlock):
                warm, routed = module(x, warmup=True), module(x, warmup=False)
                gaps.append((names[module], float((routed - warm).norm() / warm.norm())))
                x = routed
            else:
                x = module(x)
    return gaps
