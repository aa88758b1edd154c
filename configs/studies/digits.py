# What each part of PCE buys on the digits: the tuned twins, then PCE with one part changed
# at a time, three seeds each, scored on the 449 test digits (settings were chosen on the
# validation digits: digits_lr.py). Every arm trains 8 epochs at its config's learning rate.
# The arms whose comparisons carry the claims (PCE against ResNet, routing against one static
# expert, position in the router, the narrow PCE against ResNet) run five seeds, since their
# three-seed intervals overlapped.
# Each arm is compared with the arm it changes one thing of: PCE and the narrow PCE with
# ResNet, routing with one static expert, and every other part with PCE.
description = ('The digits (1,079 training digits, 8 epochs, batch 64; PCE: phase 1 = epochs '
               '1-2), top-1 on the 449 test digits, three seeds an arm, five for the arms '
               'the claims compare.')
_pce = 'configs/pce_digits.py'
_five = [0, 1, 2, 3, 4]
arms = dict(
    resnet=dict(config='configs/resnet_digits.py', seeds=_five),
    pce=dict(config=_pce, seeds=_five),
    # One static expert a block (no router, no attention) against one of E chosen a patch:
    # equal active FLOPs, the cleanest test of what routing is worth.
    pce_phase1_only=dict(config=_pce, options={'model.backbone.phase_cfg.warmup_epochs': 8},
                         seeds=_five, reference='pce'),
    pce_k1=dict(config=_pce, options={'model.backbone.top_k': 1}, seeds=_five,
                reference='pce_phase1_only'),
    pce_no_position=dict(config=_pce, options={'model.backbone.router_cfg.position': False},
                         seeds=_five, reference='pce'),
    pce_no_context=dict(config=_pce, options={'model.backbone.context': 'none'},
                        reference='pce'),
    pce_e4=dict(config=_pce, options={'model.backbone.num_experts': 4}, reference='pce'),
    pce_e16=dict(config=_pce, options={'model.backbone.num_experts': 16}, reference='pce'),
    # The proposal's own phase 1: every expert on every patch, averaged.
    pce_warmup_all=dict(config=_pce, options={'model.backbone.phase_cfg.warmup_experts': 'all'},
                        reference='pce'),
    pce_lite=dict(config='configs/pce_digits_lite.py', seeds=_five),
    # The narrow PCE kept in phase 1: what routing buys at 0.55x ResNet's FLOPs.
    pce_lite_phase1_only=dict(config='configs/pce_digits_lite.py', seeds=_five,
                              options={'model.backbone.phase_cfg.warmup_epochs': 8},
                              reference='pce_lite'),
)
reference = 'resnet'
seeds = [0, 1, 2]
split = 'test'
metric = 'accuracy/top1'
input_shape = (1, 28, 28)
options = {'default_hooks.checkpoint.max_keep_ckpts': 1}
