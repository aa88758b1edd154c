# Faster R-CNN + FPN on Pascal VOC 07+12 (test: VOC2007 test, mmdet's VOCMetric mAP) with a
# ResNet-50 backbone, trained from scratch like its twin.
# Twin: pce_frcnn_voc.py, which differs only in `backbone`.
_base_ = './_base_/frcnn_voc0712.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None))
