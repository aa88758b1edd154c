"""PCENet: a backbone of Position Convolution Expert blocks, with mm's ResNet contract.

Stem -> 4 stages (each: a downsampling transition, then PCE blocks) -> the maps of
``out_indices``. The ``'r18'`` and ``'r50'`` presets have ResNet-18's and ResNet-50's stage
channels, so necks built for those take PCENet unchanged; ``'tiny'`` keeps the resolution
of 28-32 px images in its stem, like the CIFAR ResNets. The two-phase recipe lives in
:mod:`.phase`, the router losses in :mod:`.losses`, the NaN/inf diagnosis in :mod:`.finite`.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import MODELS
from .block import PCEBlock
from .finite import raise_if_not_finite
from .losses import RouterLosses
from .phase import WARMUP, TwoPhaseRecipe, where
from .settings import (EXPERT_DEFAULTS, LOSS_DEFAULTS, PHASE_DEFAULTS, per_stage,
                       reject_old_settings, resolve, resolve_arch)

__all__ = ['PCENet']

CONTEXT_PLACES = ('stage', 'block', 'none')


@MODELS.register_module()
class PCENet(BaseModule):
    """Position Convolution Experts backbone.

    Args:
        arch: a preset name (``'tiny'``, ``'r18'``, ``'r50'``) or a dict with the keys of
            :data:`~pce_mm.models.settings.ARCH_KEYS`.
        in_channels: channels of the input image (1 for MNIST).
        num_experts: experts per block, ``e``.
        top_k: experts run per patch, ``k``.
        patch_size: routed patch side per stage (int for all stages); ``None`` keeps the
            preset's.
        expert_cfg: ``kernel_size`` (3), ``norm_cfg`` (``None``: ``norm_cfg``; ``LN2d``
            makes sparse equal dense in training) and ``dispatch`` (``'sparse'``, or
            ``'dense'``: every expert everywhere, masked, the tests' reference).
        residual: residual connection around each block's experts.
        context: deformable attention after a stage's last block (``'stage'``), after every
            block (``'block'``), or nowhere (``'none'``), in the stages that have it
            (``stage_with_context``; ``None`` keeps the preset's).
        router_cfg, context_cfg: arguments of every
            :class:`~pce_mm.models.router.PatchRouter` and
            :class:`~pce_mm.models.context.DeformableContext`.
        phase_cfg: the two-phase recipe (:class:`~pce_mm.models.phase.TwoPhaseRecipe`):
            ``warmup_epochs`` (10) or ``warmup_iters`` of phase 1, ``warmup_experts``
            (``'tied'``), ``warmup_combine``, ``router_init`` (``'kmeans'``),
            ``target_entropy`` (0.5). The phase follows the Runner; see :meth:`set_phase`.
        loss_cfg: phase 2's router losses (:class:`~pce_mm.models.losses.RouterLosses`):
            weights ``entropy`` (0.01), ``balance`` (0.01), ``z`` (0), and
            ``log_expert_load`` (True). They reach the optimizer through the last map.
        check_finite: raise ``FloatingPointError`` naming the block whose router logits,
            expert outputs or context output hold NaN/inf (one host sync per forward).
        out_indices, frozen_stages, conv_cfg, norm_cfg, norm_eval, with_cp, init_cfg: as
            mm's ResNet (``with_cp`` recomputes each block's experts, combine and context
            in backward; ``frozen_stages``: 0 is the stem, -1 none).
        zero_init_residual: start the last norm of every residual branch (experts and
            context) at zero, so each block begins as the identity (not with pretrained
            ``init_cfg``).
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

    @reject_old_settings
    def __init__(self,
                 arch: Union[str, dict] = 'r50',
                 in_channels: int = 3,
                 num_experts: int = 8,
                 top_k: int = 2,
                 patch_size: Union[int, Sequence[int], None] = None,
                 expert_cfg: Optional[dict] = None,
                 residual: bool = True,
                 context: str = 'stage',
                 stage_with_context: Optional[Sequence[bool]] = None,
                 router_cfg: Optional[dict] = None,
                 context_cfg: Optional[dict] = None,
                 phase_cfg: Optional[dict] = None,
                 loss_cfg: Optional[dict] = None,
                 check_finite: bool = True,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 zero_init_residual: bool = True,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg)
        self.arch = resolve_arch(arch, self.arch_settings)
        num_stages = len(self.arch['channels'])
        if in_channels < 1:
            raise ValueError(f'in_channels must be >= 1, got {in_channels}')
        if context not in CONTEXT_PLACES:
            raise ValueError(f'context must be one of {CONTEXT_PLACES}, got {context!r}')
        patch_sizes = per_stage('patch_size', patch_size, self.arch['patch_sizes'])
        stage_with_context = per_stage('stage_with_context', stage_with_context,
                                       self.arch['stage_with_context'])
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(f'out_indices must be in [0, {num_stages}), got {out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        expert_cfg = resolve('expert_cfg', expert_cfg, EXPERT_DEFAULTS)
        self.recipe = TwoPhaseRecipe(**resolve('phase_cfg', phase_cfg, PHASE_DEFAULTS))
        self.router_losses = RouterLosses(**resolve('loss_cfg', loss_cfg, LOSS_DEFAULTS))
        # The phase the model last trained in (0: never) and whether the switch ran:
        # checkpointed (get_extra_state), kept on the host (no sync to read).
        self.last_phase = 0
        self.switched = False
        self.check_finite = check_finite
        # The factor the training loop applies to the task loss (RouterLossScaleHook).
        self.aux_loss_scale: Optional[float] = None
        self.in_channels = in_channels
        self.num_experts = num_experts
        self.top_k = top_k
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
                    expert_kernel=expert_cfg['kernel_size'], dispatch=expert_cfg['dispatch'],
                    warmup_experts=self.recipe.warmup_experts,
                    warmup_combine=self.recipe.warmup_combine, residual=residual,
                    with_context=with_context and (context == 'block' or j == depth - 1),
                    router_cfg=router_cfg, context_cfg=context_cfg, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg, expert_norm_cfg=expert_cfg['norm_cfg'],
                    with_cp=with_cp))
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, nn.Sequential(*[b for b in blocks if b is not None]))
            self.res_layers.append(layer_name)
            prev = self.arch['channels'][i]
        self.out_channels = tuple(self.arch['channels'][i] for i in self.out_indices)
        self._freeze_stages()

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

    def stage_blocks(self, stage: int) -> list:
        """The PCE blocks of ``stage`` (0-based), in forward order."""
        return [m for m in getattr(self, self.res_layers[stage]) if isinstance(m, PCEBlock)]

    @property
    def stage_strides(self) -> Tuple[int, ...]:
        """Input pixels per feature-map pixel at each stage."""
        stride = 1 if self.arch['stem'] == 'cifar' else 4
        strides = []
        for s in self.arch['strides']:
            stride *= s
            strides.append(stride)
        return tuple(strides)

    def count_params(self) -> Dict[str, int]:
        """Total parameters, and the active ones: those one patch uses (its top-k experts)."""
        total = sum(p.numel() for p in self.parameters())
        idle = sum((b.num_experts - b.top_k) * b.experts.num_params_per_expert()
                   for b in self.blocks())
        return dict(total=total, active=total - idle)

    def init_weights(self) -> None:
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'
        if pretrained:
            return
        for block in self.blocks():
            if self.recipe.warmup_experts == 'tied':
                block.tie_experts()
            if self.zero_init_residual:
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

    def set_phase(self, phase: Optional[int]) -> None:
        """Fixes the phase (1: expert warm-up, 2: routed) whatever the Runner says; ``None``
        lets it follow the Runner's epoch / iteration (and outside a Runner, the phase the
        model last trained in) again. Forcing phase 2 on a model that trained in phase 1
        runs the switch at its next forward."""
        self.recipe.force(phase)

    def switch_to_routing(self, x: torch.Tensor) -> None:
        """The switch (see :meth:`TwoPhaseRecipe.switch`) on the batch ``x``, now."""
        self.recipe.switch(self, x)

    def get_extra_state(self) -> torch.Tensor:
        """``[last_phase, switched]``: a tensor, as tracing (FLOP counts) and
        ``weights_only`` loading take one."""
        return torch.tensor([self.last_phase, int(self.switched)])

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.last_phase, switched = (int(v) for v in state.tolist())
        self.switched = bool(switched)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PCENet was built with in_channels={self.in_channels} and expects '
                             f'(B, {self.in_channels}, H, W) input, got {tuple(x.shape)}')
        phase = self.recipe.phase_of(self, x)
        warmup = phase == WARMUP
        x = self.stem(x)
        stem_finite = torch.isfinite(x).all() if self.check_finite else None
        outs = []
        for i, name in enumerate(self.res_layers):
            for module in getattr(self, name):
                x = module(x, warmup) if isinstance(module, PCEBlock) else module(x)
            if i in self.out_indices:
                # The routed path leaves maps in channels-last memory; necks and heads may
                # not read strides (mmcv's CPU RoIAlign took such a map as NCHW: garbage).
                outs.append(x.contiguous())
        if self.check_finite:
            raise_if_not_finite(stem_finite, [(n, b.finite) for n, b in self.named_modules()
                                              if isinstance(b, PCEBlock)], where)
        if self.training and torch.is_grad_enabled():
            aux_loss = None if warmup else self.router_losses.of_blocks(
                [self.stage_blocks(i) for i in range(len(self.res_layers))])
            idle = self.recipe.idle_term(self, phase)
            if idle is not None:
                aux_loss = idle if aux_loss is None else aux_loss + idle
            if aux_loss is not None:
                outs[-1] = self.router_losses.attach(outs[-1], aux_loss, self.aux_loss_scale)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'PCENet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
