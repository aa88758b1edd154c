# MNIST at its own 28x28, one channel (idx files in data/mnist), with the CIFAR ResNet-18
# head and a 20-epoch SGD schedule; top-1 accuracy on the 10k test digits.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
# The router losses get the task loss's fp16 scale / accumulation factor; the experts' loads
# go to TensorBoard (PCENet only).
custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook')]

data_root = 'data/mnist'
data_preprocessor = dict(num_classes=10, mean=[33.46], std=[78.87])
train_pipeline = [dict(type='RandomCrop', crop_size=28, padding=2), dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]
# mmpretrain 1.2.0's MNIST picks its files by `test_mode`, not by `split`: without
# test_mode=True, split='test' silently returns the training digits.
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(type='MNIST', data_root=data_root, split='train', test_mode=False,
                 download=False, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(type='MNIST', data_root=data_root, split='test', test_mode=True,
                 download=False, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[12, 17], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
