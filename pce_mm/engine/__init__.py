from .hooks import RouterLossScaleHook
from .optim import BF16OptimWrapper

__all__ = ['RouterLossScaleHook', 'BF16OptimWrapper']
