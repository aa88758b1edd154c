"""The convolutional experts of a PCE block: ``e`` independent ``Conv -> BN -> ReLU``."""
from typing import Iterator, Optional

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn

__all__ = ['ConvExperts']


class ConvExperts(BaseModule):
    """``num_experts`` independent ``Conv(k x k) -> norm -> act`` modules.

    The convolutions have no padding: they are applied to patches that carry a halo of
    ``kernel_size // 2`` pixels (see :func:`~pce_mm.models.dispatch.sparse_dispatch`), so
    each output pixel sees exactly what a full-map convolution would.
    """

    def __init__(self,
                 num_experts: int,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if num_experts < 1:
            raise ValueError(f'num_experts must be >= 1, got {num_experts}')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'expert kernel_size must be odd and >= 1, got {kernel_size}')
        self.halo = kernel_size // 2
        self.experts = nn.ModuleList(
            ConvModule(in_channels, out_channels, kernel_size, padding=0, conv_cfg=conv_cfg,
                       norm_cfg=norm_cfg, act_cfg=act_cfg) for _ in range(num_experts))

    def __len__(self) -> int:
        return len(self.experts)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.experts)

    def num_params_per_expert(self) -> int:
        return sum(p.numel() for p in self.experts[0].parameters())
