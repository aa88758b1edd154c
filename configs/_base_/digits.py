# scikit-learn's 1,797 handwritten digits as MNIST files (written by
# `python tools/misc/make_digits_mnist.py data/digits`: 1,348 train / 449 test digits), on
# MNIST's recipe with a short schedule. A seeded fifth of the training digits (269) is held
# out for validation (mmpretrain's KFoldDataset, fold 0 of 5): settings are chosen on it;
# the 449 test digits are read only by tools/test.py. Training takes a seeded `fraction` of
# the other 1,079 (1: all of them; the training-set-size study sets less).
_base_ = './mnist.py'

data_root = 'data/digits'
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True, type='SubsetDataset', fraction=1.0, seed=0,
        dataset=dict(
            type='KFoldDataset', fold=0, num_splits=5, seed=0, test_mode=False,
            dataset=dict(type='MNIST', data_root=data_root, split='train', test_mode=False,
                         download=False, pipeline={{_base_.train_pipeline}}))))
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type='KFoldDataset', fold=0, num_splits=5, seed=0, test_mode=True,
        dataset=dict(type='MNIST', data_root=data_root, split='train', test_mode=False,
                     download=False, pipeline={{_base_.test_pipeline}})))
test_dataloader = dict(
    dataset=dict(type='MNIST', data_root=data_root, split='test', test_mode=True,
                 download=False, pipeline={{_base_.test_pipeline}}))

param_scheduler = dict(milestones=[6])
train_cfg = dict(max_epochs=8)
