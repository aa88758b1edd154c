from .concat import ConcatDatasetIfPresent
from .pcam import PCam
from .tiny_imagenet import TinyImageNet
from .transforms import RandomBlackPatches, RandomChannelBoost

__all__ = ['TinyImageNet', 'PCam', 'ConcatDatasetIfPresent', 'RandomChannelBoost',
           'RandomBlackPatches']
