# PatchCamelyon with mmpretrain's ResNet-18. Twin: pce_pcam.py.
_base_ = './_base_/pcam.py'

model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=18, in_channels=3, out_indices=(3, )))
