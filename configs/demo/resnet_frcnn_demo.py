# The demo (pce_frcnn_demo.py) with the ResNet-50 twin: `backbone` differs, as between
# configs/pce_frcnn_voc.py and configs/resnet_frcnn_voc.py, and the learning rate each twin
# chose on validation.
_base_ = './pce_frcnn_demo.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet', depth=50, out_indices=(0, 1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None))
# Chosen on the validation images from the twins' common grid (configs/studies/demo_det_lr.py).
optim_wrapper = dict(optimizer=dict(lr=0.01))
