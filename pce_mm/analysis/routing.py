"""Reading the router of a trained PCE model: per stage, which expert each patch went to.

Legend: ``b`` batch, ``n`` patches per image, ``e`` experts, ``gh, gw`` patch-grid rows and
columns, ``H, W`` network input size.

Works for any mm model whose ``backbone`` is a :class:`~pce_mm.models.PCENet` (detector,
segmentor, classifier): images go through the config's test pipeline and the model's data
preprocessor, as in evaluation, and only the backbone runs.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn

from ..models import PCENet
from ..models.dispatch import PatchGrid
from ..models.router import Routing
from ..utils import adapt_to_cpu, merge_cli_options

__all__ = ['StageRouting', 'load_model', 'image_pipeline', 'route_batch',
           'position_only_routing', 'expand_to_input']


@dataclass
class StageRouting:
    """What one block's router decided for a batch."""
    stage: int                 # 1-based
    probs: torch.Tensor        # (b, gh, gw, e) softmax of the logits (no selection bias)
    chosen: torch.Tensor       # (b, gh, gw, k) the experts the block ran, first the top-1
    weights: torch.Tensor      # (b, gh, gw, k) their weights in the block's output
    patch_pixels: int          # input pixels per patch side (patch size x stage stride)
    centres: torch.Tensor      # (gh, gw, 2) patch centres (y, x) in network-input pixels

    @property
    def top1(self) -> torch.Tensor:
        """``(b, gh, gw)`` each patch's first expert. With loss-free balancing this is the
        top of the logits plus the selection bias, not always the most probable expert."""
        return self.chosen[..., 0]

    @classmethod
    def of(cls, stage: int, routing: Routing, grid: PatchGrid, patch_pixels: int,
           stride: int) -> 'StageRouting':
        """From a block's :class:`~pce_mm.models.router.Routing` on ``grid``."""
        def cells(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, grid.rows, grid.cols, t.shape[-1])
        return cls(stage, cells(routing.probs), cells(routing.indices), cells(routing.weights),
                   patch_pixels, _centres_px(grid, stride))


def load_model(config: str, checkpoint: str, device: str = 'cpu',
               options: Optional[dict] = None, pce_only: bool = True) -> tuple:
    """``(cfg, model)``: the config (with ``--cfg-options`` merged) and its model with the
    checkpoint's weights, in eval mode; ``pce_only``: its backbone must be a PCENet."""
    from mmengine.registry import MODELS
    cfg = Config.fromfile(config)                     # imports its custom_imports
    adapt_to_cpu(merge_cli_options(cfg, options))
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    backbone = getattr(model, 'backbone', None)
    if pce_only and not isinstance(backbone, PCENet):
        raise TypeError(f'{config}: model.backbone is {type(backbone).__name__}, not PCENet')
    load_checkpoint(model, checkpoint, map_location='cpu')
    return cfg, model.to(device).eval()


def image_pipeline(cfg: Config, model: nn.Module) -> Compose:
    """The config's test pipeline, reading image files and no annotations."""
    steps = [dict(step) for step in cfg.test_dataloader.dataset.pipeline
             if 'LoadAnnotations' not in step['type']]
    if not steps or steps[0]['type'] != 'LoadImageFromFile':
        gray = model.backbone.in_channels == 1
        steps.insert(0, dict(type='LoadImageFromFile',
                             color_type='grayscale' if gray else 'color'))
    return Compose(steps)


@torch.no_grad()
def route_batch(model: nn.Module, data: dict, block: str = 'last') -> tuple:
    """Runs the data preprocessor and the backbone on a collated batch.

    Returns ``(inputs, data_samples, routings)``: the network input ``(b, c, H, W)``, the
    data samples, and one :class:`StageRouting` per PCE stage from its ``block``
    (``'first'`` or ``'last'``).
    """
    data = model.data_preprocessor(data, False)
    inputs = data['inputs']
    backbone: PCENet = model.backbone
    backbone(inputs)
    routings = []
    for stage, stride in enumerate(backbone.stage_strides):
        blocks = backbone.stage_blocks(stage)
        if not blocks:
            continue
        chosen = blocks[-1] if block == 'last' else blocks[0]
        routings.append(StageRouting.of(stage + 1, chosen.last_routing, chosen.last_grid,
                                        chosen.patch_size * stride, stride))
    return inputs, data['data_samples'], routings


@torch.no_grad()
def position_only_routing(backbone: PCENet, input_size: Sequence[int],
                          block: str = 'last') -> List[StageRouting]:
    """What position alone decides: each router's choice with its content input held at
    zero, whose layer norm is the norm's learnt bias, the same for every image.

    The patch grids are those of an input of ``input_size`` ``(H, W)``.
    """
    height, width = input_size
    out = []
    for stage, stride in enumerate(backbone.stage_strides):
        blocks = backbone.stage_blocks(stage)
        if not blocks:
            continue
        chosen = blocks[-1] if block == 'last' else blocks[0]
        grid = PatchGrid(-(-height // stride), -(-width // stride), chosen.patch_size)
        router = chosen.router
        device = next(router.parameters()).device
        content = torch.zeros(1, grid.num_patches, router.content_norm.normalized_shape[0],
                              device=device)
        out.append(StageRouting.of(stage + 1, router(content, grid.centres(device)), grid,
                                   chosen.patch_size * stride, stride))
    return out


def _centres_px(grid: PatchGrid, stride: int) -> torch.Tensor:
    """Centres of the patches' parts inside the map, in network-input pixels."""
    size = torch.tensor([grid.height * stride, grid.width * stride], dtype=torch.float32)
    return (grid.centres().cpu() * size).view(grid.rows, grid.cols, 2)


def expand_to_input(per_patch: torch.Tensor, patch_pixels: int,
                    size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """``(gh, gw)`` per-patch values painted over the input pixels each patch covers,
    cropped to ``size`` ``(H, W)``."""
    full = per_patch.repeat_interleave(patch_pixels, 0).repeat_interleave(patch_pixels, 1)
    return full if size is None else full[:size[0], :size[1]]
