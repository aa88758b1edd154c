from .hooks import ExpertLoadHook, RouterLossScaleHook
from .optim import BF16OptimWrapper

__all__ = ['RouterLossScaleHook', 'ExpertLoadHook', 'BF16OptimWrapper']
