"""PCENet: a backbone of Position Convolution Expert blocks, with mm's ResNet contract.

Stem -> 4 stages (each: a downsampling transition, then PCE blocks) -> the maps of
``out_indices``. The ``'r18'`` and ``'r50'`` presets have ResNet-18's and ResNet-50's stage
channels, so necks built for those take PCENet unchanged; ``'tiny'`` keeps the resolution
of 28-32 px images in its stem, like the CIFAR ResNets.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import MODELS
from .block import PCEBlock

__all__ = ['PCENet']

ARCH_KEYS = ('stem', 'stem_channels', 'channels', 'expert_channels', 'depths', 'strides',
             'patch_sizes', 'stage_with_context')
CONTEXT_PLACES = ('stage', 'block', 'none')


@MODELS.register_module()
class PCENet(BaseModule):
    """Position Convolution Experts backbone.

    Args:
        arch: a preset name (``'tiny'``, ``'r18'``, ``'r50'``) or a dict with the keys of
            :data:`ARCH_KEYS`.
        in_channels: channels of the input image (1 for MNIST).
        num_experts: experts per block, ``e``.
        top_k: experts run per patch, ``k``.
        patch_size: routed patch side per stage (int for all stages); ``None`` keeps the
            preset's.
        expert_kernel: kernel size of the experts.
        dispatch: ``'sparse'`` or ``'dense'`` (the all-experts reference, for tests).
        residual: residual connection around each block's experts.
        context: where deformable attention sits in a stage that has it: after its last
            block (``'stage'``), after every block (``'block'``), or nowhere (``'none'``).
        stage_with_context: per-stage switch; ``None`` keeps the preset's.
        router_cfg: extra arguments of every :class:`~pce_mm.models.router.PatchRouter`.
        context_cfg: extra arguments of every :class:`~pce_mm.models.context.DeformableContext`.
        out_indices: stages whose outputs are returned.
        frozen_stages: stages (0 = stem) whose parameters are frozen; -1 freezes none.
        norm_eval: keep BatchNorm layers in eval mode while training.
        zero_init_residual: start the last norm of every residual branch (experts and
            context) at zero, so each block begins as the identity (as mmdet's ResNet does);
            deep stacks trained from scratch need it.
            Applied by ``init_weights`` unless ``init_cfg`` loads a checkpoint.
    """
    # Experts work at 3/4 of ResNet's bottleneck width (ResNet-18: 3/4 of its stage width),
    # so k=2 of them cost about one 3x3 convolution; ResNet's depths are kept where that
    # matches its FLOPs. Patches cover 32x32 input pixels in every stage (p * stride = 32),
    # so a 224 px image is a 7x7 grid of patches at every stage, with no padding.
    arch_settings = {
        'tiny': dict(stem='cifar', stem_channels=64, channels=(64, 128, 256, 512),
                     expert_channels=(48, 88, 176, 352), depths=(3, 3, 3, 3),
                     strides=(1, 2, 2, 2), patch_sizes=(8, 4, 2, 1),
                     stage_with_context=(False, True, True, True)),
        'r18': dict(stem='resnet', stem_channels=64, channels=(64, 128, 256, 512),
                    expert_channels=(48, 88, 176, 352), depths=(3, 3, 3, 3),
                    strides=(1, 2, 2, 2), patch_sizes=(8, 4, 2, 1),
                    stage_with_context=(False, True, True, True)),
        'r50': dict(stem='resnet', stem_channels=64, channels=(256, 512, 1024, 2048),
                    expert_channels=(48, 96, 192, 384), depths=(3, 4, 6, 3),
                    strides=(1, 2, 2, 2), patch_sizes=(8, 4, 2, 1),
                    stage_with_context=(False, True, True, True)),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'r50',
                 in_channels: int = 3,
                 num_experts: int = 8,
                 top_k: int = 2,
                 patch_size: Union[int, Sequence[int], None] = None,
                 expert_kernel: int = 3,
                 dispatch: str = 'sparse',
                 residual: bool = True,
                 context: str = 'stage',
                 stage_with_context: Optional[Sequence[bool]] = None,
                 router_cfg: Optional[dict] = None,
                 context_cfg: Optional[dict] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 zero_init_residual: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg)
        self.arch = self._resolve_arch(arch)
        num_stages = len(self.arch['channels'])
        if in_channels < 1:
            raise ValueError(f'in_channels must be >= 1, got {in_channels}')
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k must be in [1, num_experts={num_experts}], got {top_k}')
        if context not in CONTEXT_PLACES:
            raise ValueError(f'context must be one of {CONTEXT_PLACES}, got {context!r}')
        patch_sizes = self._per_stage('patch_size', patch_size, self.arch['patch_sizes'])
        if any(p < 1 for p in patch_sizes):
            raise ValueError(f'patch_size must be >= 1 in every stage, got {patch_sizes}')
        stage_with_context = self._per_stage('stage_with_context', stage_with_context,
                                             self.arch['stage_with_context'])
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(f'out_indices must be in [0, {num_stages}), got {out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        self.in_channels = in_channels
        self.num_experts = num_experts
        self.top_k = top_k
        self.patch_sizes = patch_sizes
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual

        self.stem = self._make_stem_layer(in_channels, conv_cfg, norm_cfg)
        self.res_layers = []
        prev = self.arch['stem_channels']
        for i in range(num_stages):
            with_context = stage_with_context[i] and context != 'none'
            blocks = [self._make_transition(prev, self.arch['channels'][i],
                                            self.arch['strides'][i], conv_cfg, norm_cfg)]
            depth = self.arch['depths'][i]
            for j in range(depth):
                blocks.append(PCEBlock(
                    self.arch['channels'][i], self.arch['expert_channels'][i],
                    num_experts=num_experts, top_k=top_k, patch_size=patch_sizes[i],
                    expert_kernel=expert_kernel, dispatch=dispatch, residual=residual,
                    with_context=with_context and (context == 'block' or j == depth - 1),
                    router_cfg=router_cfg, context_cfg=context_cfg, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg))
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, nn.Sequential(*[b for b in blocks if b is not None]))
            self.res_layers.append(layer_name)
            prev = self.arch['channels'][i]
        self.out_channels = tuple(self.arch['channels'][i] for i in self.out_indices)
        self._freeze_stages()

    def _resolve_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise KeyError(f'PCENet arch {arch!r} is not one of '
                               f'{sorted(self.arch_settings)}; pass a preset or a dict')
            return dict(self.arch_settings[arch])
        missing = set(ARCH_KEYS) - set(arch)
        if missing:
            raise KeyError(f'PCENet arch dict misses the keys {sorted(missing)}')
        arch = dict(arch)
        lengths = {k: len(arch[k]) for k in ARCH_KEYS if k not in ('stem', 'stem_channels')}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'PCENet arch: per-stage entries differ in length: {lengths}')
        if arch['stem'] not in ('resnet', 'cifar'):
            raise ValueError(f"PCENet arch stem must be 'resnet' or 'cifar', got {arch['stem']!r}")
        return arch

    def _per_stage(self, name: str, value, default: Sequence) -> Tuple:
        if value is None:
            return tuple(default)
        if isinstance(value, (int, bool)):
            return (value, ) * len(default)
        if len(value) != len(default):
            raise ValueError(f'{name} needs one entry per stage ({len(default)}), got {value}')
        return tuple(value)

    def _make_stem_layer(self, in_channels: int, conv_cfg, norm_cfg) -> nn.Sequential:
        out = self.arch['stem_channels']
        if self.arch['stem'] == 'cifar':
            # 28-32 px inputs: a 3x3 stride-1 stem keeps the resolution, as ResNet_CIFAR does.
            return nn.Sequential(ConvModule(in_channels, out, 3, padding=1, conv_cfg=conv_cfg,
                                            norm_cfg=norm_cfg))
        return nn.Sequential(
            ConvModule(in_channels, out, 7, stride=2, padding=3, conv_cfg=conv_cfg,
                       norm_cfg=norm_cfg),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    @staticmethod
    def _make_transition(in_channels: int, out_channels: int, stride: int, conv_cfg,
                         norm_cfg) -> Optional[nn.Module]:
        """ResNet-D style downsampling (average pool, then 1x1 conv): cheap at any width."""
        if stride == 1 and in_channels == out_channels:
            return None
        layers = [nn.AvgPool2d(stride, stride, ceil_mode=True)] if stride > 1 else []
        layers.append(ConvModule(in_channels, out_channels, 1, conv_cfg=conv_cfg,
                                 norm_cfg=norm_cfg, act_cfg=None))
        return nn.Sequential(*layers)

    def blocks(self):
        """All PCE blocks, in forward order."""
        return [m for m in self.modules() if isinstance(m, PCEBlock)]

    def count_params(self) -> Dict[str, int]:
        """Total parameters, and the active ones: those one patch uses (its top-k experts)."""
        total = sum(p.numel() for p in self.parameters())
        idle = sum((b.num_experts - b.top_k) * b.experts.num_params_per_expert()
                   for b in self.blocks())
        return dict(total=total, active=total - idle)

    def init_weights(self) -> None:
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'
        if self.zero_init_residual and not pretrained:
            for block in self.blocks():
                if block.residual and block.combine.with_norm:
                    nn.init.zeros_(block.combine.norm.weight)
                if block.context is not None:
                    nn.init.zeros_(block.context.out_norm.weight)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.stem.eval()
            for param in self.stem.parameters():
                param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            layer = getattr(self, f'layer{i}')
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PCENet was built with in_channels={self.in_channels} and expects '
                             f'(B, {self.in_channels}, H, W) input, got {tuple(x.shape)}')
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'PCENet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
