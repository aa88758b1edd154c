"""The convolutional experts of a PCE block: ``e`` independent ``Conv -> BN -> ReLU``."""
from typing import Iterator, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule, constant_init, kaiming_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .winograd import WINOGRAD_OUTPUTS, winograd_conv

__all__ = ['ConvExperts', 'Expert']


class Expert(BaseModule):
    """``Conv(k x k, no padding) -> norm -> act`` on patch tiles: mm's ``ConvModule`` order,
    attribute names (``conv``, the norm's own name such as ``bn``, ``activate``) and init,
    with two cases of its own, explicit for every conv and norm type:

    - Tiles whose output is at most ``max_matmul_output`` pixels a side (patches of 1
      pixel, stage 4 of the presets) are convolved as one matrix product over their
      ``k x k`` neighbourhoods when the conv is a plain ``nn.Conv2d`` (faster than a
      convolution of tiny tiles on CPU; at 2x2 outputs oneDNN's convolution of
      channels-last tiles is the faster: docs/performance.md); other conv types convolve.
    - Tiles of 4 and 6 pixels a side (patches of 2 and 4 with their halo: stages 2-3 of the
      presets) under a plain 3x3 ``nn.Conv2d`` are Winograd's own input tiles: they are
      convolved by :func:`~pce_mm.models.winograd.winograd_conv` (``winograd = False``
      turns it off), faster than oneDNN on such small tiles and the same convolution up to
      float rounding, from ``winograd_min_tiles`` tiles up (below, its fixed cost per call,
      a dozen small operations, is more than it saves). On CPU only (cuDNN picks its own
      algorithms, Winograd's among them; this one was never timed on a GPU), in float32 or
      float64, not under autocast, and not under tracing (mmengine's FlopAnalyzer counts
      the direct convolution's FLOPs).
    - Routing can hand an expert a batch of one 1x1 patch. A batch norm (BN, or SyncBN
      within one process) cannot estimate statistics from one value per channel and refuses
      to: such a batch is normalised with the running statistics instead, and leaves them
      unchanged. SyncBN across processes always runs (it gathers statistics from every
      process, and skipping its collective on one would hang the others); GroupNorm and
      LayerNorm normalise one pixel as they normalise any.
    """
    max_matmul_output = 1
    winograd = True
    winograd_min_tiles = 32

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN', requires_grad=True),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.conv = build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size,
                                     padding=0, bias=norm_cfg is None)
        self.norm_name = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate = None
        if act_cfg is not None:
            act_cfg = dict(act_cfg)
            if act_cfg['type'] in ('ReLU', 'LeakyReLU'):     # in place, as ConvModule
                act_cfg.setdefault('inplace', True)
            self.activate = build_activation_layer(act_cfg)
        conv = self.conv
        self.matmul = (type(conv) is nn.Conv2d and conv.groups == 1 and conv.stride == (1, 1)
                       and conv.dilation == (1, 1))
        if self.matmul:
            # The weight's memory in (c_out, ky, kx, c) order, the matrix product's columns:
            # flattening it is a view (a copy would be kept for backward, and made again
            # each step), and the product's weight gradient has the parameter's layout
            # (docs/performance.md). Shape, state dict and oneDNN's convolution are unchanged.
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
        self.init_weights()                      # at construction, as ConvModule does

    @property
    def norm(self) -> Optional[nn.Module]:
        return getattr(self, self.norm_name) if self.norm_name else None

    def init_weights(self) -> None:
        if self.init_cfg:
            return super().init_weights()
        kaiming_init(self.conv, a=0, nonlinearity='relu')          # as ConvModule
        if self.norm is not None:
            constant_init(self.norm, 1, bias=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1] - self.conv.kernel_size[-1] + 1
        as_matmul = (self.matmul and side <= self.max_matmul_output
                     and x.shape[-2] == x.shape[-1])
        if as_matmul:
            y = self._conv_as_matmul(x)
        elif self._winograd(x, side):
            y = winograd_conv(x.permute(0, 2, 3, 1), self.conv.weight, self.conv.bias)
            y = y.permute(0, 3, 1, 2)                                 # channels-last view
        else:
            y = self.conv(x)
        if self.norm is not None:
            y = self._normalize(y)
        return self.activate(y) if self.activate is not None else y

    def _winograd(self, x: torch.Tensor, side: int) -> bool:
        return (self.winograd and self.matmul and side in WINOGRAD_OUTPUTS
                and x.shape[0] >= self.winograd_min_tiles and x.device.type == 'cpu'
                and self.conv.kernel_size == (3, 3) and x.shape[-2] == x.shape[-1]
                and x.dtype in (torch.float32, torch.float64) and not torch.jit.is_tracing()
                and not torch.is_autocast_enabled(x.device.type))

    def _normalize(self, y: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        one_value = y.shape[0] * y.shape[2] * y.shape[3] == 1
        if (self.training and one_value and isinstance(norm, _BatchNorm)
                and norm.track_running_stats and not _syncs_across_processes(norm)):
            return F.batch_norm(y, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                False, 0.0, norm.eps)
        return norm(y)

    def _conv_as_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, c, q, q) -> (n, c_out, p, p)`` by one matrix product of the neighbourhoods.

        The neighbourhoods are flattened in ``(ky, kx, c)`` order, the tiles' own
        channels-last order: a 1x1 output's tile is its own row (a view, no copy) and larger
        ones copy runs of ``c`` contiguous values, where ``(c, ky, kx)`` order read every
        value ``c`` apart (up to 1.7x slower forward, docs/performance.md); the weight's
        memory is in that order (see ``__init__``), so ``F.linear`` gets, and keeps for
        backward, a view of it, not a copy. The output is a channels-last view, like
        oneDNN's output for channels-last tiles."""
        conv = self.conv
        n, c, q, _ = x.shape
        k = conv.kernel_size[0]
        p = q - k + 1                                                  # output side
        tiles = x.permute(0, 2, 3, 1)                                  # (n, q, q, c)
        if p == 1:                                  # the tile is its own neighbourhood
            cols = tiles.reshape(n, k * k * c)
        else:
            cols = tiles.unfold(1, k, 1).unfold(2, k, 1)                # (n, p, p, c, k, k)
            cols = cols.permute(0, 1, 2, 4, 5, 3).reshape(n * p * p, k * k * c)
        y = F.linear(cols, _flat_weight(conv.weight), conv.bias)      # (n * p * p, c_out)
        return y.view(n, p, p, conv.out_channels).permute(0, 3, 1, 2)


def _flat_weight(weight: torch.Tensor) -> torch.Tensor:
    """``(c_out, c, k, k) -> (c_out, k * k * c)``: a conv weight in the columns' order."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _syncs_across_processes(norm: nn.Module) -> bool:
    """Whether a SyncBN in training gathers statistics from other processes (torch's own
    test in ``SyncBatchNorm.forward``)."""
    if not isinstance(norm, nn.SyncBatchNorm) or not dist.is_available() \
            or not dist.is_initialized():
        return False
    return dist.get_world_size(norm.process_group or dist.group.WORLD) > 1


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
            Expert(in_channels, out_channels, kernel_size, conv_cfg=conv_cfg,
                   norm_cfg=norm_cfg, act_cfg=act_cfg) for _ in range(num_experts))

    def __len__(self) -> int:
        return len(self.experts)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.experts)

    def num_params_per_expert(self) -> int:
        return sum(p.numel() for p in self.experts[0].parameters())

    @torch.no_grad()
    def tie_(self) -> None:
        """Makes every expert a copy of expert 0 (parameters and norm statistics): sparse
        upcycling."""
        source = self.experts[0].state_dict()
        for expert in self.experts[1:]:
            expert.load_state_dict(source)
