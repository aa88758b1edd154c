"""``'LN2d'``: LayerNorm over the channels of each pixel, for the experts' ``norm_cfg``.

It normalises every pixel on its own, so an expert's output does not depend on which
other patches the router sent it: sparse and dense dispatch agree in training too, which
BatchNorm over each expert's routed patches does not give (see ``PCENet``'s
``expert_norm_cfg``). mmpretrain's implementation, registered where mmdet and mmseg
configs find it as well.
"""
from mmpretrain.models.utils import LayerNorm2d

from ..registry import MODELS

__all__ = ['LayerNorm2d']

if 'LN2d' not in MODELS.module_dict:
    MODELS.register_module('LN2d', module=LayerNorm2d)
