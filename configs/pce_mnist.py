# MNIST with PCENet-tiny on one input channel. Twin: resnet_mnist.py.
_base_ = './_base_/mnist.py'

model = dict(
    backbone=dict(
        _delete_=True, type='PCENet', arch='tiny', in_channels=1, num_experts=8, top_k=2,
        phase_cfg=dict(warmup_epochs=2), out_indices=(3, )))
