# Sample efficiency on the digits: a quarter and a half of the 1,079 training digits (seeded,
# nested; SubsetDataset), at the same number of iterations as the whole set (epochs, phase 1
# and the LR step scaled by 1 / fraction). The whole-set points are digits.py's runs.
# Patch-level routing in CNNs provably needs fewer samples than one expert of equal capacity
# when the router sends class-discriminative patches to the same experts (pMoE, Chowdhury
# et al., ICML 2023): this curve shows whether PCE has that property. As in digits.py, PCE is
# compared with ResNet and k = 1 with one static expert, at each size.
description = ('Training-set size on the digits: 270 and 540 training digits at the '
               'iterations of 1,079, top-1 on the 449 test digits, three seeds.')
_pce = 'configs/pce_digits.py'


def _fraction(fraction, **extra):
    scale = round(1 / fraction)
    return {'train_dataloader.dataset.fraction': fraction, 'train_cfg.max_epochs': 8 * scale,
            'param_scheduler.milestones': [6 * scale],
            'model.backbone.phase_cfg.warmup_epochs': 2 * scale, **extra}


arms = {}
for _name, _frac in (('quarter', 0.25), ('half', 0.5)):
    _resnet = _fraction(_frac)
    _resnet.pop('model.backbone.phase_cfg.warmup_epochs')
    arms[f'resnet_{_name}'] = dict(config='configs/resnet_digits.py', options=_resnet)
    arms[f'pce_{_name}'] = dict(config=_pce, options=_fraction(_frac),
                                reference=f'resnet_{_name}')
    arms[f'pce_phase1_only_{_name}'] = dict(
        config=_pce, reference=f'pce_{_name}', options=_fraction(_frac, **{
            'model.backbone.phase_cfg.warmup_epochs': 8 * round(1 / _frac)}))
    arms[f'pce_k1_{_name}'] = dict(config=_pce, reference=f'pce_phase1_only_{_name}',
                                   options=_fraction(_frac, **{'model.backbone.top_k': 1}))
reference = 'resnet_quarter'
seeds = [0, 1, 2]
split = 'test'
metric = 'accuracy/top1'
input_shape = (1, 28, 28)
options = {'default_hooks.checkpoint.max_keep_ckpts': 1}
# results_page.py: test top-1 against training digits, the whole set from digits.py.
curve = dict(x_label='training digits', series={
    name: [(270, f'{arm}_quarter'), (540, f'{arm}_half'), (1079, f'digits:{arm}')]
    for name, arm in (('ResNet', 'resnet'), ('PCE', 'pce'),
                      ('PCE, one static expert (phase 1 only)', 'pce_phase1_only'),
                      ('PCE, k = 1', 'pce_k1'))})
