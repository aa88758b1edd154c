# UperNet on Pascal VOC 2012 (+ SBD aug when present; mmseg's IoUMetric mIoU) with a
# PCENet-R50 backbone, trained from scratch. Twin: resnet_upernet_voc.py (only `backbone`).
_base_ = './_base_/upernet_voc12aug.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PCENet',
        arch='r50',
        num_experts=8,
        top_k=2,
        phase_cfg=dict(warmup_iters=2000),  # expert warm-up: the first 2k of 20k iterations
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False))
