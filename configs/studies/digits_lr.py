# The twins' learning rates on the digits, chosen on the held-out validation digits
# (configs/_base_/digits.py): the same grid for both, around the configs' 0.05 and up to
# where the ResNet twin's accuracy turns, two seeds each. The configs ship the winners.
description = ('Learning rate of each twin on the digits, chosen on the 269 validation '
               'digits (8 epochs, batch 64; PCE: phase 1 = epochs 1-2).')
arms = dict(
    resnet=dict(config='configs/resnet_digits.py'),
    pce=dict(config='configs/pce_digits.py'))
reference = 'resnet'
lrs = [0.025, 0.05, 0.1, 0.2, 0.4, 0.8]
seeds = [0, 1]
split = 'val'
metric = 'accuracy/top1'
input_shape = (1, 28, 28)
options = {'default_hooks.checkpoint.max_keep_ckpts': 1}
