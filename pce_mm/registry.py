"""Where pce_mm registers its modules.

mmdet's, mmseg's and mmpretrain's registries are all children of mmengine's root
registries, and a child looks a name up in its ancestors. Registering into the roots
therefore makes ``type='PCENet'`` (and the datasets, transforms, hooks and metrics) resolve
from all three packages, and from any other mm package, after one ``import pce_mm``.
mmpretrain's ``BATCH_AUGMENTS`` has no root parent: batch augments register there too.
"""
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS, OPTIM_WRAPPERS, TRANSFORMS
from mmpretrain.registry import BATCH_AUGMENTS

__all__ = ['MODELS', 'DATASETS', 'TRANSFORMS', 'HOOKS', 'METRICS', 'OPTIM_WRAPPERS',
           'BATCH_AUGMENTS']
