# UperNet on Pascal VOC 2012 (+ SBD aug when present; mmseg's IoUMetric mIoU) with mmseg's
# ResNet-50 (V1c), trained from scratch. Twin: pce_upernet_voc.py (only `backbone`).
_base_ = './_base_/upernet_voc12aug.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=50,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        contract_dilation=True))
