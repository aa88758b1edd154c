from .batch_augments import BatchBlackPatches, BatchChannelBoost
from .block import PCEBlock
from .context import DeformableContext
from .dispatch import PatchGrid, dense_dispatch, sparse_dispatch
from .experts import ConvExperts
from .norm import LayerNorm2d
from .pcenet import PCENet
from .router import PatchRouter, Routing

__all__ = ['PCENet', 'PCEBlock', 'PatchRouter', 'Routing', 'ConvExperts', 'DeformableContext',
           'PatchGrid', 'sparse_dispatch', 'dense_dispatch', 'BatchChannelBoost',
           'BatchBlackPatches']
