from .concat import ConcatDatasetIfPresent
from .pcam import PCam
from .subset import SubsetDataset
from .synthetic import SyntheticCIFAR10
from .tiny_imagenet import TinyImageNet
from .transforms import RandomBlackPatches, RandomChannelBoost

__all__ = ['TinyImageNet', 'PCam', 'ConcatDatasetIfPresent', 'RandomChannelBoost',
           'RandomBlackPatches', 'SyntheticCIFAR10', 'SubsetDataset']
