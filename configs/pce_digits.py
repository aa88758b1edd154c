# The digits (configs/_base_/digits.py) with PCENet-tiny on one input channel; phase 1 is
# the first 2 of 8 epochs. Twin: resnet_digits.py.
_base_ = './_base_/digits.py'

model = dict(
    backbone=dict(
        _delete_=True, type='PCENet', arch='tiny', in_channels=1, num_experts=8, top_k=2,
        phase_cfg=dict(warmup_epochs=2), out_indices=(3, )))
# Chosen on the validation digits from the twins' common grid (configs/studies/digits_lr.py).
optim_wrapper = dict(optimizer=dict(lr=0.2))
