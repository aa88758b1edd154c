"""Active FLOPs, as mmengine's ``FlopAnalyzer`` traces them.

A PCENet traced in phase 2 runs its top-``k`` experts on their patches only (sparse
dispatch), so the count is the FLOPs one image actually uses: ``k`` of ``E`` experts.
"""
import torch
from torch import nn

__all__ = ['flop_analyzer', 'backbone_gflops']


def flop_analyzer(model: nn.Module, x: torch.Tensor):
    """mmengine's ``FlopAnalyzer`` of ``model(x)``, quiet about ops it does not count."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


@torch.no_grad()
def backbone_gflops(model: nn.Module, input_shape: tuple) -> float:
    """GFLOPs of ``model.backbone`` on one random ``(c, h, w)`` image, in eval mode (a
    trained PCENet in the phase it last trained in)."""
    backbone = model.backbone
    backbone.eval()              # mmpretrain's ResNet.train() returns None: no chaining
    x = torch.randn(1, *input_shape, device=next(backbone.parameters()).device)
    return flop_analyzer(backbone, x).total() / 1e9
