# scikit-learn's 1,797 handwritten digits as MNIST files (1,348 train / 449 test, written by
# tools/misc/make_digits_mnist.py data/digits): the small real set of the routing study
# (docs/routing.md). pce_mnist.py on a short schedule. Twin: resnet_digits.py.
_base_ = './pce_mnist.py'

data_root = 'data/digits'
train_dataloader = dict(batch_size=64, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
model = dict(backbone=dict(warmup_epochs=2))
param_scheduler = dict(milestones=[6])
train_cfg = dict(max_epochs=8)
