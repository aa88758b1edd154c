# PatchCamelyon: 96x96 patches from the official HDF5 files in data/pcam, binary
# (tumour = 1), ResNet-18-style stem; top-1 accuracy and ROC AUC on the test split.
_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    'mmpretrain::_base_/schedules/imagenet_bs256_coslr.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
# The router losses get the task loss's fp16 scale / accumulation factor; the experts' loads
# go to TensorBoard (PCENet only).
custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook')]

model = dict(head=dict(num_classes=2, topk=(1, )))
data_root = 'data/pcam'
# Images come out of the HDF5 files as RGB.
data_preprocessor = dict(
    num_classes=2, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    to_rgb=False)
train_pipeline = [
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type='PCam', data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type='PCam', data_root=data_root, split='valid', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type='PCam', data_root=data_root, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='AUC', pos_label=1)]
test_evaluator = val_evaluator

param_scheduler = dict(type='CosineAnnealingLR', T_max=20, by_epoch=True, begin=0, end=20)
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
