"""The convolutional experts of a PCE block: ``e`` independent ``Conv -> BN -> ReLU``."""
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn

__all__ = ['ConvExperts', 'Expert']


class Expert(ConvModule):
    """``Conv -> norm -> act`` on patch tiles, that also trains on a single pixel.

    Two things differ from ``ConvModule``:

    - Tiles whose output is at most 2x2 pixels (patches of 2 and 1 pixels, stages 3-4 of
      the presets) are convolved as one matrix product over their ``k x k``
      neighbourhoods. In a PCENet-tiny training step (batch 128, 28 px, 2 CPU cores) that
      took 4.2 s against 4.9 s with oneDNN's convolution of the tiny tiles; for 1-pixel
      outputs the tile is its own neighbourhood and needs no unfolding.
    - Routing can hand an expert one 1x1 patch; BatchNorm cannot estimate statistics from
      one value per channel (and refuses to), so such a batch is normalised with the running
      statistics instead, and leaves them unchanged.
    """
    max_matmul_output = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_as_matmul(x) if self._as_matmul(x) else self.conv(x)
        if self.with_norm:
            norm = self.norm
            if (self.training and y.shape[0] * y.shape[2] * y.shape[3] == 1
                    and type(norm) is nn.BatchNorm2d and norm.track_running_stats):
                y = F.batch_norm(y, norm.running_mean, norm.running_var, norm.weight,
                                 norm.bias, False, 0.0, norm.eps)
            else:
                y = norm(y)
        return self.activate(y) if self.with_activation else y

    def _as_matmul(self, x: torch.Tensor) -> bool:
        conv = self.conv
        out = x.shape[-1] - conv.kernel_size[-1] + 1
        return (type(conv) is nn.Conv2d and out <= self.max_matmul_output
                and x.shape[-2] == x.shape[-1] and conv.groups == 1
                and conv.stride == (1, 1) and conv.dilation == (1, 1)
                and conv.padding == (0, 0))

    def _conv_as_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, c, q, q) -> (n, c_out, p, p)`` by one matrix product of the neighbourhoods,
        flattened in the weight's own ``(c, ky, kx)`` order (the copy is of activations,
        never of the weight); the output is a channels-last view, like oneDNN's output for
        channels-last tiles."""
        conv = self.conv
        n, c, q, _ = x.shape
        k = conv.kernel_size[0]
        p = q - k + 1                                                  # output side
        if p == 1:                                  # the tile is its own neighbourhood
            cols = x.reshape(n, c * k * k)
        else:
            cols = x.permute(0, 2, 3, 1).unfold(1, k, 1).unfold(2, k, 1)   # (n,p,p,c,k,k)
            cols = cols.reshape(n * p * p, c * k * k)
        y = F.linear(cols, conv.weight.flatten(1), conv.bias)         # (n * p * p, c_out)
        return y.view(n, p, p, conv.out_channels).permute(0, 3, 1, 2)

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
            Expert(in_channels, out_channels, kernel_size, padding=0, conv_cfg=conv_cfg,
                       norm_cfg=norm_cfg, act_cfg=act_cfg) for _ in range(num_experts))

    def __len__(self) -> int:
        return len(self.experts)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.experts)

    def num_params_per_expert(self) -> int:
        return sum(p.numel() for p in self.experts[0].parameters())

    @torch.no_grad()
    def tie_(self, noise: float = 0.0, generator: Optional[torch.Generator] = None) -> None:
        """Makes every expert a copy of expert 0 (parameters and norm statistics): sparse
        upcycling. ``noise`` adds Gaussian noise of that std, relative to each tensor's own
        std, to the copies' parameters, to break their symmetry."""
        source = self.experts[0].state_dict()
        for expert in self.experts[1:]:
            expert.load_state_dict(source)
            if noise:
                for param in expert.parameters():
                    scale = noise * float(param.std()) if param.numel() > 1 else noise
                    param.add_(torch.randn(param.shape, generator=generator, device=param.device,
                                           dtype=param.dtype) * scale)
