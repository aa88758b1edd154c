"""PCE's two-phase schedule: expert warm-up (phase 1), then routing and attention (phase 2).

The phase follows from the training progress mmengine's Runner keeps in its ``MessageHub``
(``epoch`` and ``iter``, restored from the checkpoint on ``--resume``), so a resumed run is
in the right phase and a backbone swapped into any mm config switches by itself. Outside a
Runner's train and val loops (a test loop, plain PyTorch use) the model is in phase 2 unless
the phase is set explicitly.
"""
from typing import Optional

from mmengine.logging import MessageHub, print_log

__all__ = ['TwoPhaseSchedule']

WARMUP, ROUTED = 1, 2


class TwoPhaseSchedule:
    """Decides the phase from the Runner's progress, and logs each switch once.

    Args:
        warmup_epochs: epochs of phase 1; 0 turns phase 1 off.
        warmup_iters: iterations of phase 1; when set, it wins over ``warmup_epochs``
            (iteration-based loops, such as mmseg's, count no epochs).
        name: how log lines name the model.
    """

    def __init__(self, warmup_epochs: int = 10, warmup_iters: Optional[int] = None,
                 name: str = 'PCENet'):
        if warmup_epochs < 0:
            raise ValueError(f'warmup_epochs must be >= 0, got {warmup_epochs}')
        if warmup_iters is not None and warmup_iters < 0:
            raise ValueError(f'warmup_iters must be >= 0 or None, got {warmup_iters}')
        self.warmup_epochs = warmup_epochs
        self.warmup_iters = warmup_iters
        self.name = name
        self.forced: Optional[int] = None
        self._logged: Optional[int] = None
        self._warned_whole_run = False

    def force(self, phase: Optional[int]) -> None:
        """Fixes the phase (1 or 2) whatever the Runner says; ``None`` follows it again."""
        if phase not in (None, WARMUP, ROUTED):
            raise ValueError(f'phase must be 1 (expert warm-up), 2 (routed) or None, got {phase}')
        self.forced = phase

    def current(self, training: bool) -> int:
        if self.forced is not None:
            return self.forced
        info = MessageHub.get_current_instance().runtime_info
        # Only a Runner's train and val loops say where training is; a finished run leaves
        # its progress in the MessageHub, which must not steer later use of the model.
        if info.get('loop_stage') not in ('train', 'val') or 'iter' not in info:
            return ROUTED
        if self.warmup_iters is not None:
            phase = WARMUP if info['iter'] < self.warmup_iters else ROUTED
        else:
            phase = WARMUP if info['epoch'] < self.warmup_epochs else ROUTED
        if training:
            self._log(phase, info)
        return phase

    @staticmethod
    def where() -> str:
        """' at epoch E, iteration I' inside a Runner's loops, '' outside."""
        info = MessageHub.get_current_instance().runtime_info
        if info.get('loop_stage') not in ('train', 'val') or 'iter' not in info:
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
                          'warmup_iters.', logger='current', level=30)
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
