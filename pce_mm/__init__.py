"""Position Convolution Experts (PCE) for OpenMMLab: ``PCENet`` and its training recipe.

``import pce_mm`` (or ``custom_imports=dict(imports=['pce_mm'])`` in a config) applies the
stack's compatibility fixes, then registers everything into mmengine's root registries, so
mmdet, mmseg and mmpretrain configs all find it.
"""
from . import compat

compat.apply_all()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registers)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
