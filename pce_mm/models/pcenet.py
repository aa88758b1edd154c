"""PCENet: a backbone of Position Convolution Expert blocks, with mm's ResNet contract.

Stem -> 4 stages (each: a downsampling transition, then PCE blocks) -> the maps of
``out_indices``. The ``'r18'`` and ``'r50'`` presets have ResNet-18's and ResNet-50's stage
channels, so necks built for those take PCENet unchanged; ``'tiny'`` keeps the resolution
of 28-32 px images in its stem, like the CIFAR ResNets.
"""
import logging
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import ConvModule
from mmengine.dist import broadcast
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import MODELS
from .block import PCEBlock
from .monitor import log_routing
from .phase import ROUTED, WARMUP, TwoPhaseSchedule
from .losses import (AttachAuxLoss, expert_load, load_balance, router_entropy, router_z_loss,
                     weighted_aux_losses)

__all__ = ['PCENet']

ARCH_KEYS = ('stem', 'stem_channels', 'channels', 'expert_channels', 'depths', 'strides',
             'patch_sizes', 'stage_with_context')
CONTEXT_PLACES = ('stage', 'block', 'none')
# Patches each router's k-means init at the switch draws on at most (over all its batches):
# the points stay in the checkpoint until the switch (64 hidden features each, 2 MiB a
# router) and k-means of them takes well under a second.
INIT_POINTS = 8192


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
        warmup_epochs: epochs of phase 1 (expert warm-up: no router, no attention); 0 turns
            it off. The phase follows the Runner's progress; see
            :class:`~pce_mm.models.phase.TwoPhaseSchedule` and :meth:`set_phase`.
        warmup_iters: iterations of phase 1; wins over ``warmup_epochs`` when set.
        warmup_experts: ``'tied'``: the experts start identical and phase 1 trains them as
            one (expert 0, at one expert's cost); the switch copies it into all of them, so
            routing starts from phase 1's function. ``'all'``: phase 1 averages every
            expert (``E / k`` times phase 2's expert work); ``'random'``: a random
            ``top_k`` per patch. See ``docs/routing.md`` for what each measured.
        warmup_combine: ``'all'`` and ``'random'`` combine the experts by ``'mean'`` or
            ``'sum'``.
        ramp_iters: after the switch, the expert output moves from phase 1's combination
            to the router's over this many iterations (both are computed meanwhile, so
            they cost phase 1's expert work on top); 0 switches at once.
        switch_cfg: the switch's one-time actions, run at the first routed forward after
            the model trained in phase 1, recorded in the checkpoint (never run twice):
            ``router_init`` (``'kmeans'``: each router is set from the hidden features of
            that batch's patches, see :meth:`PatchRouter.init_from_data`; ``None``: keep
            its init), ``init_batches`` (the k-means draws on the patches of the switch's
            batch and of the ``init_batches - 1`` training batches before it, at most
            ``INIT_POINTS`` in all: the routers keep those batches' hidden features, in
            the checkpoint too, until the switch), ``target_entropy`` (the k-means
            router's mean routing entropy over ``ln E``), ``tie_noise`` (relative noise on the tied copies) and
            ``expert_norm``: from the switch on, the experts' norm layers normalise with
            their ``'batch'`` statistics (each expert over the patches routed to it) or
            keep the ``'running'`` statistics of phase 1 (a fixed per-channel affine;
            their scale and shift still train), so training, like evaluation, continues
            from phase 1's function. ``router_train``: after a k-means init, train the
            ``'all'`` router, or only its ``'centroids'`` (last layer) on fixed hidden
            features: the init's logit scale multiplies the gradient that reaches the
            hidden layer (and, through it, the block's features).
        router_loss_weights: weights of the router losses in phase 2: per-patch routing
            ``entropy``, Switch-style load ``balance`` and ``z`` (router z-loss); 0 turns
            one off. They reach the optimizer through the last returned feature map.
        log_expert_load: log each expert's share of patches per stage (``E`` values a
            stage), besides the routing entropy and imbalance.
        check_finite: raise ``FloatingPointError`` naming the block when its router logits,
            expert outputs or context output hold NaN/inf (one host sync per forward).
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
        with_cp: recompute each block's experts, combine and context in the backward pass
            (mm's ``with_cp``: memory for time; see :class:`PCEBlock`).
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
                 warmup_epochs: int = 10,
                 warmup_iters: Optional[int] = None,
                 warmup_experts: str = 'tied',
                 warmup_combine: str = 'mean',
                 ramp_iters: int = 0,
                 switch_cfg: Optional[dict] = None,
                 router_loss_weights: Optional[Dict[str, float]] = None,
                 log_expert_load: bool = True,
                 check_finite: bool = True,
                 residual: bool = True,
                 context: str = 'stage',
                 stage_with_context: Optional[Sequence[bool]] = None,
                 router_cfg: Optional[dict] = None,
                 context_cfg: Optional[dict] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 expert_norm_cfg: Optional[dict] = None,
                 norm_eval: bool = False,
                 zero_init_residual: bool = True,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg)
        self.arch = self._resolve_arch(arch)
        num_stages = len(self.arch['channels'])
        if in_channels < 1:
            raise ValueError(f'in_channels must be >= 1, got {in_channels}')
        if context not in CONTEXT_PLACES:
            raise ValueError(f'context must be one of {CONTEXT_PLACES}, got {context!r}')
        patch_sizes = self._per_stage('patch_size', patch_size, self.arch['patch_sizes'])
        stage_with_context = self._per_stage('stage_with_context', stage_with_context,
                                             self.arch['stage_with_context'])
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(f'out_indices must be in [0, {num_stages}), got {out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
        weights = dict(entropy=0.01, balance=0.01, z=0.0)
        unknown = set(router_loss_weights or {}) - set(weights)
        if unknown:
            raise KeyError(f'router_loss_weights has unknown keys {sorted(unknown)}; '
                           f'allowed: {sorted(weights)}')
        weights.update(router_loss_weights or {})
        if any(w < 0 for w in weights.values()):
            raise ValueError(f'router_loss_weights must be >= 0, got {weights}')
        self.router_loss_weights = weights
        self.schedule = TwoPhaseSchedule(warmup_epochs, warmup_iters, ramp_iters)
        self.switch_cfg = self._check_switch_cfg(switch_cfg)
        self.warmup_experts = warmup_experts
        # The phase the model last trained in (0: never) and whether the switch's one-time
        # actions ran: checkpointed (get_extra_state), kept on the host (no sync to read).
        self.last_phase = 0
        self.switched = False
        self.log_expert_load = log_expert_load
        self.check_finite = check_finite
        # The factor the training loop applies to the task loss (RouterLossScaleHook).
        self.aux_loss_scale: Optional[float] = None
        self._warned_fp16 = False
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
                    expert_kernel=expert_kernel, dispatch=dispatch,
                    warmup_experts=warmup_experts, warmup_combine=warmup_combine,
                    residual=residual,
                    with_context=with_context and (context == 'block' or j == depth - 1),
                    router_cfg=router_cfg, context_cfg=context_cfg, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg, expert_norm_cfg=expert_norm_cfg, with_cp=with_cp))
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, nn.Sequential(*[b for b in blocks if b is not None]))
            self.res_layers.append(layer_name)
            prev = self.arch['channels'][i]
        self.out_channels = tuple(self.arch['channels'][i] for i in self.out_indices)
        self._freeze_stages()

    @staticmethod
    def _check_switch_cfg(cfg: Optional[dict]) -> dict:
        out = dict(router_init='kmeans', init_batches=1, target_entropy=0.5, tie_noise=0.0,
                   expert_norm='batch', router_train='all')
        unknown = set(cfg or {}) - set(out)
        if unknown:
            raise KeyError(f'switch_cfg has unknown keys {sorted(unknown)}; '
                           f'allowed: {sorted(out)}')
        out.update(cfg or {})
        if out['router_init'] not in ('kmeans', None):
            raise ValueError(f"switch_cfg router_init must be 'kmeans' or None, "
                             f"got {out['router_init']!r}")
        if not isinstance(out['init_batches'], int) or out['init_batches'] < 1:
            raise ValueError(f"switch_cfg init_batches must be an int >= 1, "
                             f"got {out['init_batches']!r}")
        if not 0 < out['target_entropy'] < 1:
            raise ValueError(f"switch_cfg target_entropy must be in (0, 1), "
                             f"got {out['target_entropy']}")
        if out['expert_norm'] not in ('batch', 'running'):
            raise ValueError(f"switch_cfg expert_norm must be 'batch' or 'running', "
                             f"got {out['expert_norm']!r}")
        if out['router_train'] not in ('all', 'centroids'):
            raise ValueError(f"switch_cfg router_train must be 'all' or 'centroids', "
                             f"got {out['router_train']!r}")
        if out['tie_noise'] < 0:
            raise ValueError(f"switch_cfg tie_noise must be >= 0, got {out['tie_noise']}")
        return out

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
        if self.warmup_experts == 'tied' and not pretrained:
            for block in self.blocks():
                block.tie_experts()
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

    def set_phase(self, phase: Optional[int]) -> None:
        """Fixes the phase (1: expert warm-up, 2: routed) whatever the Runner says; ``None``
        lets it follow the Runner's epoch / iteration (and outside a Runner, the phase the
        model last trained in) again. Forcing phase 2 on a model that trained in phase 1
        runs the switch (see ``switch_cfg``) at its next forward."""
        self.schedule.force(phase)

    def get_extra_state(self) -> torch.Tensor:
        """``[last_phase, switched]``: a tensor, as tracing (FLOP counts) and
        ``weights_only`` loading take one."""
        return torch.tensor([self.last_phase, int(self.switched)])

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.last_phase, switched = (int(v) for v in state.tolist())
        self.switched = bool(switched)
        self._fix_router_hidden()
        self.train(self.training)        # the experts' norm mode (switch_cfg.expert_norm)

    def _fix_router_hidden(self) -> None:
        """After a k-means init with ``router_train='centroids'``, only the routers' last
        layers train."""
        fixed = (self.switched and self.switch_cfg['router_init'] == 'kmeans'
                 and self.switch_cfg['router_train'] == 'centroids')
        for block in self.blocks():
            block.router.fixed_hidden = fixed

    @torch.no_grad()
    def switch_to_routing(self, x: torch.Tensor) -> None:
        """The switch's one-time actions on the input batch ``x``: tie the experts to the
        one phase 1 trained (``warmup_experts='tied'``), then initialise every router from
        its patches' hidden features (``switch_cfg.router_init``), in a phase-1 pass in eval
        mode. Under DDP rank 0's result is broadcast, so all ranks switch alike."""
        was_training = self.training
        self.eval()
        blocks = self.blocks()
        # Its own seeded generator: the switch is the same in a resumed run as in an
        # unbroken one, whatever the global random state.
        generator = torch.Generator(x.device).manual_seed(0)
        if self.warmup_experts == 'tied':
            for block in blocks:
                block.tie_experts(self.switch_cfg['tie_noise'], generator)
        stats = {}
        if self.switch_cfg['router_init'] == 'kmeans':
            with torch.autocast(x.device.type, enabled=False):
                x = self.stem(x.float())
                for i, name in enumerate(self.res_layers):
                    for module in getattr(self, name):
                        if isinstance(module, PCEBlock):
                            fit = module.init_router(x, self._points_per_batch(),
                                                     self.switch_cfg['target_entropy'],
                                                     generator)
                            stats.setdefault(i + 1, []).append(fit)
                            x = module(x, warmup=True)
                        else:
                            x = module(x)
        for block in blocks:
            for tensor in list(block.experts.state_dict().values()) + \
                    list(block.router.state_dict().values()):
                broadcast(tensor)
        self.switched = True
        self._fix_router_hidden()
        self.train(was_training)         # the experts' norm mode (switch_cfg.expert_norm)
        report = ', '.join(
            f"s{s}: entropy {sum(f['entropy'] for f in v) / len(v):.2f} ln E, busiest "
            f"{max(f['busiest'] for f in v):.2f}x" for s, v in stats.items())
        print_log(f'PCENet: switched to routing{self.schedule.where()}: '
                  + ('experts tied to the warm-up expert; ' if self.warmup_experts == 'tied'
                     else '') + (f'routers set by k-means ({report})' if stats
                                 else 'routers kept'), logger='current')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PCENet was built with in_channels={self.in_channels} and expects '
                             f'(B, {self.in_channels}, H, W) input, got {tuple(x.shape)}')
        phase, ramp = self.schedule.state(self.training, self.last_phase)
        if phase == ROUTED and self.last_phase == WARMUP and not self.switched:
            # The switch runs on a training batch, or where phase 2 is asked for explicitly
            # (tools/test.py --phase 2); a validation pass before it stays in phase 1.
            if self.training or self.schedule.forced == ROUTED:
                self.switch_to_routing(x)
            else:
                phase, ramp = WARMUP, 1.0
        if self.training:
            self.last_phase = phase
        warmup = phase == WARMUP
        collect = self._points_to_collect(warmup)
        x = self.stem(x)
        stem_finite = torch.isfinite(x).all() if self.check_finite else None
        outs = []
        for i, name in enumerate(self.res_layers):
            for module in getattr(self, name):
                x = (module(x, warmup, ramp, collect) if isinstance(module, PCEBlock)
                     else module(x))
            if i in self.out_indices:
                # The routed path leaves maps in channels-last memory; necks and heads may
                # not read strides (mmcv's CPU RoIAlign took such a map as NCHW: garbage).
                outs.append(x.contiguous())
        if self.check_finite:
            self._raise_if_not_finite(stem_finite)
        if self.training and torch.is_grad_enabled():
            aux_loss = self._router_losses() if not warmup else None
            idle = self._idle_parameters_term(warmup)
            if idle is not None:
                aux_loss = idle if aux_loss is None else aux_loss + idle
            if aux_loss is not None:
                outs[-1] = AttachAuxLoss.apply(outs[-1], aux_loss, self._aux_grad_scale())
        return tuple(outs)

    def _points_per_batch(self) -> int:
        """Patches a batch gives each router's k-means init at most: ``INIT_POINTS`` over
        all ``init_batches``."""
        return INIT_POINTS // self.switch_cfg['init_batches']

    def _points_to_collect(self, warmup: bool) -> int:
        """In phase 1's last ``init_batches - 1`` training batches before the switch, how
        many patches each router keeps for its k-means init (the switch's batch is the
        last); 0 elsewhere, and outside a Runner's train loop, where the switch iteration
        is unknown."""
        cfg = self.switch_cfg
        if not (warmup and self.training and cfg['init_batches'] > 1
                and cfg['router_init'] == 'kmeans' and not self.switched):
            return 0
        left = self.schedule.iters_to_switch()
        if left is None or not 0 < left < cfg['init_batches']:
            return 0
        return self._points_per_batch()

    def _raise_if_not_finite(self, stem_finite: torch.Tensor) -> None:
        """Stops at the first block whose router or experts produced NaN/inf, naming it:
        one host synchronisation per forward."""
        flags = [(name, block.finite) for name, block in self.named_modules()
                 if isinstance(block, PCEBlock) and block.finite is not None]
        if bool(torch.cat([stem_finite.view(1)] + [f for _, f in flags]).all()):
            return
        if not stem_finite:
            raise FloatingPointError(
                f'PCENet: the stem output holds NaN/inf{self.schedule.where()}: the input '
                'image or the weights are already non-finite (did an earlier step diverge?)')
        parts = ('router logits', 'expert outputs', 'context output')
        for name, finite in flags:
            bad = [parts[i] for i, ok in enumerate(finite.tolist()) if not ok]
            if bad:
                after = f' (then in its {", ".join(bad[1:])})' if len(bad) > 1 else ''
                raise FloatingPointError(
                    f'PCENet: non-finite values (NaN/inf) first in {bad[0]} of block '
                    f'backbone.{name}{after}{self.schedule.where()}; lower the learning rate, '
                    'or set router_loss_weights=dict(z=...) to keep router logits bounded')

    def _idle_parameters_term(self, warmup: bool) -> Optional[torch.Tensor]:
        """0 times the parameters this phase leaves out of the graph (phase 1: router,
        attention and the tied copies; phase 2: a fixed router's hidden layer), as DDP
        (without ``find_unused_parameters``) requires every parameter in the graph."""
        blocks = self.blocks()
        if warmup:
            parts = [part for block in blocks for part in (block.router, block.context)]
            if self.warmup_experts == 'tied':
                parts += [e for block in blocks for e in block.experts.experts[1:]]
        else:
            parts = [part for block in blocks if block.router.fixed_hidden
                     for part in (block.router.content_norm, block.router.mlp[0])]
        idle = [p for part in parts if part is not None for p in part.parameters()
                if p.requires_grad]
        return sum(p.sum() for p in idle) * 0.0 if idle else None

    def _router_losses(self) -> Optional[torch.Tensor]:
        """Weighted router losses, averaged over blocks, and per-stage statistics, logged."""
        terms = {'entropy': [], 'balance': [], 'z': []}
        stages = {}
        for i in range(len(self.res_layers)):
            blocks = self.stage_blocks(i)
            routings = [b.last_routing for b in blocks if b.last_routing is not None]
            for b in blocks:            # they hold the graph: do not keep it past backward
                b.last_routing = None
            if not routings:
                continue
            entropies = [router_entropy(r.probs) for r in routings]
            loads = torch.stack([expert_load(r.indices, r.probs.shape[-1]) for r in routings])
            terms['entropy'] += entropies
            terms['balance'] += [load_balance(r.probs, r.indices) for r in routings]
            if self.router_loss_weights['z']:
                terms['z'] += [router_z_loss(r.logits) for r in routings]
            # Imbalance: the busiest expert's share over a uniform share (1 = balanced),
            # for the stage's most imbalanced block.
            stages[i + 1] = dict(entropy=torch.stack(entropies).mean(),
                                 imbalance=loads.max(1).values.max() * loads.shape[1],
                                 load=loads.mean(0))
        means = {k: torch.stack(v).mean() for k, v in terms.items() if v}
        losses = weighted_aux_losses(means, self.router_loss_weights)
        log_routing(losses, stages, self.log_expert_load)
        return sum(losses.values()) if losses else None

    def _aux_grad_scale(self) -> float:
        if self.aux_loss_scale is None:
            if (not self._warned_fp16 and torch.is_autocast_enabled('cuda')
                    and torch.get_autocast_dtype('cuda') == torch.float16):
                self._warned_fp16 = True
                print_log('PCENet under fp16 autocast without RouterLossScaleHook: the router '
                          "losses miss the loss scale; add custom_hooks=[dict(type="
                          "'RouterLossScaleHook')]", logger='current', level=logging.WARNING)
            return 1.0
        return self.aux_loss_scale

    def train(self, mode: bool = True) -> 'PCENet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        if mode and self.switched and self.switch_cfg['expert_norm'] == 'running':
            for block in self.blocks():
                for expert in block.experts:
                    if expert.norm is not None:
                        expert.norm.eval()
        return self
