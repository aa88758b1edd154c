from .hooks import RouterLossScaleHook
from .monitor import log_routing
from .optim import BF16OptimWrapper
from .phase import TwoPhaseSchedule

__all__ = ['RouterLossScaleHook', 'TwoPhaseSchedule', 'BF16OptimWrapper', 'log_routing']
