"""PCE's two-phase schedule: expert warm-up (phase 1), then routing and attention (phase 2).

The phase follows from the training progress mmengine's Runner keeps in its ``MessageHub``
(``epoch`` and ``iter``, restored from the checkpoint on ``--resume``), so a resumed run is
in the right phase and a backbone swapped into any mm config switches by itself. Outside a
Runner's train and val loops (a test loop, plain PyTorch use) the model runs in the phase it
last trained in (the backbone records it), phase 2 when it never trained, unless the phase
is forced (``tools/test.py --phase``).
"""
import logging
from typing import Optional, Tuple

from mmengine.logging import MessageHub, print_log

__all__ = ['TwoPhaseSchedule']

WARMUP, ROUTED = 1, 2


def _progress() -> Optional[dict]:
    """The Runner's progress (``epoch``, ``iter``, ...) inside its train and val loops, else
    ``None``: a finished run leaves its progress in the MessageHub, which must not steer
    later use of the model."""
    info = MessageHub.get_current_instance().runtime_info
    if info.get('loop_stage') not in ('train', 'val') or 'iter' not in info:
        return None
    return info


class TwoPhaseSchedule:
    """Decides the phase from the Runner's progress, and logs each switch once.

    Args:
        warmup_epochs: epochs of phase 1; 0 turns phase 1 off.
        warmup_iters: iterations of phase 1; when set, it wins over ``warmup_epochs``
            (iteration-based loops, such as mmseg's, count no epochs).
        ramp_iters: iterations after the switch over which :meth:`ramp` rises from 0 to 1.
        name: how log lines name the model.
    """

    def __init__(self, warmup_epochs: int = 10, warmup_iters: Optional[int] = None,
                 ramp_iters: int = 0, name: str = 'PCENet'):
        if warmup_epochs < 0:
            raise ValueError(f'warmup_epochs must be >= 0, got {warmup_epochs}')
        if warmup_iters is not None and warmup_iters < 0:
            raise ValueError(f'warmup_iters must be >= 0 or None, got {warmup_iters}')
        if ramp_iters < 0:
            raise ValueError(f'ramp_iters must be >= 0, got {ramp_iters}')
        self.warmup_epochs = warmup_epochs
        self.warmup_iters = warmup_iters
        self.ramp_iters = ramp_iters
        self.name = name
        self.forced: Optional[int] = None
        self._logged: Optional[int] = None
        self._warned_whole_run = False

    def force(self, phase: Optional[int]) -> None:
        """Fixes the phase (1 or 2) whatever the Runner says; ``None`` follows it again."""
        if phase not in (None, WARMUP, ROUTED):
            raise ValueError(f'phase must be 1 (expert warm-up), 2 (routed) or None, got {phase}')
        self.forced = phase

    def state(self, training: bool, last_trained: int = 0) -> Tuple[int, float]:
        """``(phase, ramp)`` for this forward: the phase (see :meth:`current`) and, in
        phase 2, :meth:`ramp`."""
        phase = self.current(training, last_trained)
        return phase, (1.0 if phase == WARMUP else self.ramp())

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

    def ramp(self) -> float:
        """Share of the routed expert output in phase 2, rising linearly over the first
        ``ramp_iters`` iterations after the switch (the rest is phase 1's combination);
        1 outside a Runner's loops or when the phase is forced.

        The switch iteration follows from the settings and the loop's length (see
        :meth:`iters_to_switch`), so a resumed run ramps on where it stopped.
        """
        info = _progress()
        if self.forced is not None or not self.ramp_iters or info is None:
            return 1.0
        return min(1.0, max(info['iter'] - self._switch_iter(info) + 1, 0) / self.ramp_iters)

    def iters_to_switch(self) -> Optional[int]:
        """Training iterations left before the first routed one (0 at it, negative after),
        inside a Runner's train loop; ``None`` outside it or when the phase is forced."""
        info = _progress()
        if self.forced is not None or info is None or info['loop_stage'] != 'train':
            return None
        return self._switch_iter(info) - info['iter']

    def _switch_iter(self, info: dict) -> int:
        """The first routed iteration, from the settings and the loop's length
        (``warmup_epochs * max_iters / max_epochs``)."""
        if self.warmup_iters is not None:
            return self.warmup_iters
        return self.warmup_epochs * info['max_iters'] // max(info['max_epochs'], 1)

    @staticmethod
    def where() -> str:
        """' at epoch E, iteration I' inside a Runner's loops, '' outside."""
        info = _progress()
        if info is None:
            return ''
        return f" at epoch {info['epoch'] + 1}, iteration {info['iter'] + 1}"

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
                print_log(f'{self.name}: phase 1 ({setting}) covers the whole run '
                          f"(max_epochs={info.get('max_epochs')}, "
                          f"max_iters={info.get('max_iters')}): the router and attention "
                          'never train. An iteration-based loop counts no epochs: set '
                          'warmup_iters.', logger='current', level=logging.WARNING)
        if phase == self._logged:
            return
        self._logged = phase
        where = f"epoch {info['epoch'] + 1}, iteration {info['iter'] + 1}"
        if phase == WARMUP:
            until = (f'iteration {self.warmup_iters}' if self.warmup_iters is not None
                     else f'epoch {self.warmup_epochs}')
            print_log(f'{self.name}: phase 1 (expert warm-up: no router, no attention) at '
                      f'{where}, until {until}', logger='current')
        else:
            print_log(f'{self.name}: phase 2 (router and deformable attention on) from '
                      f'{where}', logger='current')
