"""PCE's two-phase recipe: expert warm-up (phase 1), the switch, then routing and attention
(phase 2).

The phase follows from the training progress mmengine's Runner keeps in its ``MessageHub``
(``epoch`` and ``iter``, restored from the checkpoint on ``--resume``), so a resumed run is
in the right phase and a backbone swapped into any mm config switches by itself. Outside a
Runner's train and val loops (a test loop, plain PyTorch use) the model runs in the phase it
last trained in (the backbone records it), phase 2 when it never trained, unless the phase
is forced (``tools/test.py --phase``).

The switch happens once, at the first routed training forward: the experts, tied in phase 1
(one expert trained at one expert's cost), become copies of it (sparse upcycling), and each
router is set by k-means of its patches' hidden features, so routing starts from phase 1's
function (docs/training.md).
"""
import logging
from typing import Optional

import torch
from mmengine.dist import broadcast
from mmengine.logging import MessageHub, print_log

from .block import WARMUP_EXPERTS, PCEBlock

__all__ = ['TwoPhaseRecipe', 'WARMUP', 'ROUTED']

WARMUP, ROUTED = 1, 2
# Patches each router's k-means init at the switch draws on at most: k-means of 8192 hidden
# features of 64 channels takes well under a second.
INIT_POINTS = 8192


def _progress() -> Optional[dict]:
    """The Runner's progress (``epoch``, ``iter``, ...) inside its train and val loops, else
    ``None``: a finished run leaves its progress in the MessageHub, which must not steer
    later use of the model."""
    info = MessageHub.get_current_instance().runtime_info
    if info.get('loop_stage') not in ('train', 'val') or 'iter' not in info:
        return None
    return info


def where() -> str:
    """' at epoch E, iteration I' inside a Runner's loops, '' outside."""
    info = _progress()
    if info is None:
        return ''
    return f" at epoch {info['epoch'] + 1}, iteration {info['iter'] + 1}"


class TwoPhaseRecipe:
    """Decides each forward's phase, runs the switch, and names the parameters a phase
    leaves idle. Built from ``PCENet(phase_cfg=...)``.

    Args:
        warmup_epochs: epochs of phase 1; 0 turns phase 1 off.
        warmup_iters: iterations of phase 1; when set, it wins over ``warmup_epochs``
            (iteration-based loops, such as mmseg's, count no epochs).
        warmup_experts: ``'tied'``: the experts start identical and phase 1 trains them as
            one (expert 0, at one expert's cost); the switch copies it into all of them.
            ``'all'``: phase 1 runs every expert on every patch (the proposal's phase 1,
            ``E / k`` times phase 2's expert work); ``'random'``: a random ``top_k``.
        warmup_combine: how ``'all'`` and ``'random'`` combine the experts: ``'mean'`` or
            ``'sum'``.
        router_init: ``'kmeans'``: at the switch each router is set from the hidden
            features of the switch batch's patches (see
            :meth:`~pce_mm.models.router.PatchRouter.init_from_data`); ``None`` keeps its
            random init.
        target_entropy: the k-means router's mean routing entropy, over ``ln E``.
        name: how log lines name the model.
    """

    def __init__(self, warmup_epochs: int = 10, warmup_iters: Optional[int] = None,
                 warmup_experts: str = 'tied', warmup_combine: str = 'mean',
                 router_init: Optional[str] = 'kmeans', target_entropy: float = 0.5,
                 name: str = 'PCENet'):
        if warmup_epochs < 0:
            raise ValueError(f'phase_cfg.warmup_epochs must be >= 0, got {warmup_epochs}')
        if warmup_iters is not None and warmup_iters < 0:
            raise ValueError(f'phase_cfg.warmup_iters must be >= 0 or None, got {warmup_iters}')
        if warmup_experts not in WARMUP_EXPERTS:
            raise ValueError(f'phase_cfg.warmup_experts must be one of {WARMUP_EXPERTS}, '
                             f'got {warmup_experts!r}')
        if warmup_combine not in ('mean', 'sum'):
            raise ValueError(f"phase_cfg.warmup_combine must be 'mean' or 'sum', "
                             f'got {warmup_combine!r}')
        if router_init not in ('kmeans', None):
            raise ValueError(f"phase_cfg.router_init must be 'kmeans' or None, "
                             f'got {router_init!r}')
        if not 0 < target_entropy < 1:
            raise ValueError(f'phase_cfg.target_entropy must be in (0, 1), got {target_entropy}')
        self.warmup_epochs = warmup_epochs
        self.warmup_iters = warmup_iters
        self.warmup_experts = warmup_experts
        self.warmup_combine = warmup_combine
        self.router_init = router_init
        self.target_entropy = target_entropy
        self.name = name
        self.forced: Optional[int] = None
        self._logged: Optional[int] = None
        self._warned_whole_run = False

    def force(self, phase: Optional[int]) -> None:
        """Fixes the phase (1 or 2) whatever the Runner says; ``None`` follows it again."""
        if phase not in (None, WARMUP, ROUTED):
            raise ValueError(f'phase must be 1 (expert warm-up), 2 (routed) or None, got {phase}')
        self.forced = phase

    def current(self, training: bool, last_trained: int = 0) -> int:
        """The forced phase, else the Runner's inside its train and val loops, else
        ``last_trained`` (the phase the model last trained in; 0: never, phase 2)."""
        if self.forced is not None:
            return self.forced
        info = _progress()
        if info is None:
            return last_trained or ROUTED
        if self.warmup_iters is not None:
            phase = WARMUP if info['iter'] < self.warmup_iters else ROUTED
        else:
            phase = WARMUP if info['epoch'] < self.warmup_epochs else ROUTED
        if training:
            self._log(phase, info)
        return phase

    def phase_of(self, backbone, x: torch.Tensor) -> int:
        """This forward's phase; runs the switch first when this is the first routed
        training forward (or phase 2 is forced on a model that trained in phase 1), and
        records the phase a training forward ran in on the backbone."""
        phase = self.current(backbone.training, backbone.last_phase)
        if phase == ROUTED and backbone.last_phase == WARMUP and not backbone.switched:
            # A validation pass before the switch stays in phase 1.
            if backbone.training or self.forced == ROUTED:
                self.switch(backbone, x)
            else:
                phase = WARMUP
        if backbone.training:
            backbone.last_phase = phase
        return phase

    @torch.no_grad()
    def switch(self, backbone, x: torch.Tensor) -> None:
        """The switch's one-time actions on the input batch ``x``: tie the experts to the
        one phase 1 trained (``'tied'``), then set every router from its patches' hidden
        features (``router_init``), in a phase-1 pass in eval mode. Under DDP rank 0's
        result is broadcast, so all ranks switch alike."""
        was_training = backbone.training
        backbone.eval()
        blocks = backbone.blocks()
        # Its own seeded generator: the switch is the same in a resumed run as in an
        # unbroken one, whatever the global random state.
        generator = torch.Generator(x.device).manual_seed(0)
        if self.warmup_experts == 'tied':
            for block in blocks:
                block.tie_experts()
        stats = {}
        if self.router_init == 'kmeans':
            with torch.autocast(x.device.type, enabled=False):
                x = backbone.stem(x.float())
                for i, name in enumerate(backbone.res_layers):
                    for module in getattr(backbone, name):
                        if isinstance(module, PCEBlock):
                            fit = module.init_router(x, INIT_POINTS, self.target_entropy,
                                                     generator)
                            stats.setdefault(i + 1, []).append(fit)
                            x = module(x, warmup=True)
                        else:
                            x = module(x)
        for block in blocks:
            for tensor in list(block.experts.state_dict().values()) + \
                    list(block.router.state_dict().values()):
                broadcast(tensor)
        backbone.switched = True
        backbone.train(was_training)
        report = ', '.join(
            f"s{s}: entropy {sum(f['entropy'] for f in v) / len(v):.2f} ln E, busiest "
            f"{max(f['busiest'] for f in v):.2f}x" for s, v in stats.items())
        print_log(f'{self.name}: switched to routing{where()}: '
                  + ('experts tied to the warm-up expert; ' if self.warmup_experts == 'tied'
                     else '') + (f'routers set by k-means ({report})' if stats
                                 else 'routers kept'), logger='current')

    def idle_term(self, backbone, phase: int) -> Optional[torch.Tensor]:
        """0 times the parameters phase 1 leaves out of the graph (routers, attention and,
        tied, the copies of expert 0), as DDP without ``find_unused_parameters`` requires
        every parameter in the graph; ``None`` in phase 2, which uses them all."""
        if phase != WARMUP:
            return None
        blocks = backbone.blocks()
        parts = [part for block in blocks for part in (block.router, block.context)]
        if self.warmup_experts == 'tied':
            parts += [e for block in blocks for e in block.experts.experts[1:]]
        idle = [p for part in parts if part is not None for p in part.parameters()
                if p.requires_grad]
        return sum(p.sum() for p in idle) * 0.0 if idle else None

    def _log(self, phase: int, info: dict) -> None:
        if not self._warned_whole_run:
            self._warned_whole_run = True
            if self.warmup_iters is not None:
                whole = self.warmup_iters >= info.get('max_iters', float('inf'))
                setting = f'warmup_iters={self.warmup_iters}'
            else:
                whole = self.warmup_epochs >= info.get('max_epochs', float('inf'))
                setting = f'warmup_epochs={self.warmup_epochs}'
            if whole:
                print_log(f'{self.name}: phase 1 (phase_cfg.{setting}) covers the whole run '
                          f"(max_epochs={info.get('max_epochs')}, "
                          f"max_iters={info.get('max_iters')}): the router and attention "
                          'never train. An iteration-based loop counts no epochs: set '
                          'phase_cfg.warmup_iters.', logger='current', level=logging.WARNING)
        if phase == self._logged:
            return
        self._logged = phase
        at = f"epoch {info['epoch'] + 1}, iteration {info['iter'] + 1}"
        if phase == WARMUP:
            until = (f'iteration {self.warmup_iters}' if self.warmup_iters is not None
                     else f'epoch {self.warmup_epochs}')
            print_log(f'{self.name}: phase 1 (expert warm-up: no router, no attention) at '
                      f'{at}, until {until}', logger='current')
        else:
            print_log(f'{self.name}: phase 2 (router and deformable attention on) from '
                      f'{at}', logger='current')
