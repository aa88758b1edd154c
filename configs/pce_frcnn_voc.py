# Faster R-CNN + FPN on Pascal VOC 07+12 (test: VOC2007 test, mmdet's VOCMetric mAP) with a
# PCENet-R50 backbone, trained from scratch (no ImageNet weights exist for PCENet).
# Twin: resnet_frcnn_voc.py, which differs only in `backbone`.
_base_ = './_base_/frcnn_voc0712.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PCENet',
        arch='r50',
        num_experts=8,
        top_k=2,
        phase_cfg=dict(warmup_epochs=1),  # expert warm-up: 1 of 4 epochs (3 passes each)
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False))
