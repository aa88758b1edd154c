# What each part of PCE buys on the demo detection set: the tuned twins (BN and GN), PCE kept
# in phase 1, k = 1, no position, no context, five seeds each, scored on 400 test images.
# Each arm is compared with the arm it changes one thing of (as in digits.py).
# The BN twins' configs hold the learning rates demo_det_lr.py chose (PCE 0.005, ResNet 0.01);
# the GN arms take theirs as an option (PCE 0.01, ResNet 0.005).
# Seeds 3 and 4 joined on 2026-12-08: with three, every difference sat within the seeds'
# spread. Data first:
#   python tools/misc/make_demo_voc.py data/demo400/VOCdevkit --train 128 --test 400 --val 40
description = ('Faster R-CNN on the demo (128 training images, 192 iterations, batch 2, '
               '320x256; PCE: phase 1 = iterations 1-64), VOC mAP on 400 test images.')
_pce = 'configs/demo/pce_frcnn_demo.py'
_gn = {'model.backbone.norm_cfg.type': 'GN'}
arms = dict(
    resnet=dict(config='configs/demo/resnet_frcnn_demo.py'),
    pce=dict(config=_pce),
    pce_phase1_only=dict(config=_pce, options={'model.backbone.phase_cfg.warmup_epochs': 3},
                         reference='pce'),
    pce_k1=dict(config=_pce, options={'model.backbone.top_k': 1}, reference='pce_phase1_only'),
    pce_no_position=dict(config=_pce, options={'model.backbone.router_cfg.position': False},
                         reference='pce'),
    pce_no_context=dict(config=_pce, options={'model.backbone.context': 'none'},
                        reference='pce'),
    resnet_gn=dict(config='configs/demo/resnet_frcnn_demo.py',
                   options={**_gn, 'model.backbone.norm_cfg.num_groups': 32,
                            'optim_wrapper.optimizer.lr': 0.005}),
    pce_gn=dict(config=_pce, options={**_gn, 'model.backbone.norm_cfg.num_groups': 16,
                                      'optim_wrapper.optimizer.lr': 0.01},
                reference='resnet_gn'))
reference = 'resnet'
seeds = [0, 1, 2, 3, 4]
split = 'test'
metric = 'pascal_voc/mAP'
input_shape = (3, 256, 320)
options = {'data_root': 'data/demo400/VOCdevkit/'}
