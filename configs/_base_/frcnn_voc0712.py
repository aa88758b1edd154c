# mmdet's Faster R-CNN + FPN on VOC 07+12, for backbones trained from scratch.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
# The router losses get the task loss's fp16 scale / accumulation factor; the experts' loads
# go to TensorBoard (PCENet only).
custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook')]

# mmdet's VOC schedule assumes ImageNet weights and starts at full LR; from scratch, the
# first iterations need a linear warm-up (as mmdet's COCO schedules have).
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=4, by_epoch=True, milestones=[3], gamma=0.1)
]
# From scratch, the first steps at full LR can blow gradients up; clip them as mmdet's
# one-stage configs do.
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
# mmdet's own from-scratch recipe (configs/scratch/) normalises the FPN with GroupNorm. Without
# it the FPN's unnormalised convs learned to amplify the mean of the backbone's (post-ReLU)
# features: in the PCE demo, after the switch to routing, the largest P3 activation went
# from 2e1 to 2e4 within 40 iterations and the loss from 2.1 to 6.8 (as the LR warmed up to 0.01); with
# GN the same seeded run fell to 1.33.
model = dict(neck=dict(norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)))
