# mmseg's UperNet on Pascal VOC 2012 + SBD "aug" (VOC2012 val, mmseg's IoUMetric mIoU), for
# backbones trained from scratch. The SBD set is used when its files are present.
_base_ = 'mmseg::upernet/upernet_r50_4xb4-20k_voc12aug-512x512.py'
custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
# The router losses get the task loss's fp16 scale / accumulation factor; the experts' loads
# go to TensorBoard (PCENet only).
custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook')]

data_root = 'data/VOCdevkit/VOC2012'
model = dict(pretrained=None)  # no ImageNet weights exist for PCENet: both twins from scratch

train_dataloader = dict(dataset=dict(type='ConcatDatasetIfPresent', optional=[1]))

# mmseg's poly schedule assumes ImageNet weights and starts at full LR; from scratch, the
# first iterations need a linear warm-up.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=20000, by_epoch=False)
]
