from .concat import ConcatDatasetIfPresent
from .pcam import PCam
from .tiny_imagenet import TinyImageNet

__all__ = ['TinyImageNet', 'PCam', 'ConcatDatasetIfPresent']
