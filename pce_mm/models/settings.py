"""PCENet's grouped settings (``expert_cfg``, ``phase_cfg``, ``loss_cfg``), and the error a
config gets when it names a setting that moved or was retired (docs/history.md,
2026-12-07)."""
import functools
from typing import Optional, Sequence, Tuple, Union

__all__ = ['ARCH_KEYS', 'EXPERT_DEFAULTS', 'PHASE_DEFAULTS', 'LOSS_DEFAULTS', 'resolve_arch',
           'per_stage', 'resolve', 'reject_old_settings']

ARCH_KEYS = ('stem', 'stem_channels', 'channels', 'expert_channels', 'depths', 'strides',
             'patch_sizes', 'stage_with_context')
EXPERT_DEFAULTS = dict(kernel_size=3, norm_cfg=None, dispatch='sparse')
PHASE_DEFAULTS = dict(warmup_epochs=10, warmup_iters=None, warmup_experts='tied',
                      warmup_combine='mean', router_init='kmeans', target_entropy=0.5)
LOSS_DEFAULTS = dict(entropy=0.01, balance=0.01, z=0.0, log_expert_load=True)

# Top-level arguments that moved into a group: name -> its new place.
MOVED = dict(warmup_epochs='phase_cfg.warmup_epochs', warmup_iters='phase_cfg.warmup_iters',
             warmup_experts='phase_cfg.warmup_experts',
             warmup_combine='phase_cfg.warmup_combine',
             switch_cfg='phase_cfg (router_init, target_entropy)',
             router_loss_weights='loss_cfg (entropy, balance, z)',
             log_expert_load='loss_cfg.log_expert_load', expert_kernel='expert_cfg.kernel_size',
             expert_norm_cfg='expert_cfg.norm_cfg', dispatch='expert_cfg.dispatch')
# Recipe mechanics that measured no better on any set here and that no paper uses.
RETIRED = {
    'ramp_iters': 'the switch is seamless without a ramp (tied experts, k-means routers)',
    'tie_noise': 'identical experts diverge through the patches routed to them',
    'init_batches': 'k-means over one switch batch initialises the routers as well',
    'router_train': "only 'all' remains: the whole router trains",
    'expert_norm': "only 'batch' remains: the experts normalise with batch statistics",
    'train_logit_bias': "the router's logit bias always trains (frozen measured no better)",
}


def resolve_arch(arch: Union[str, dict], presets: dict) -> dict:
    """The preset named ``arch``, or the ``arch`` dict checked for :data:`ARCH_KEYS`."""
    if isinstance(arch, str):
        if arch not in presets:
            raise KeyError(f'PCENet arch {arch!r} is not one of {sorted(presets)}; '
                           'pass a preset or a dict')
        return dict(presets[arch])
    missing = set(ARCH_KEYS) - set(arch)
    if missing:
        raise KeyError(f'PCENet arch dict misses the keys {sorted(missing)}')
    arch = dict(arch)
    lengths = {k: len(arch[k]) for k in ARCH_KEYS if k not in ('stem', 'stem_channels')}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'PCENet arch: per-stage entries differ in length: {lengths}')
    if arch['stem'] not in ('resnet', 'cifar'):
        raise ValueError(f"PCENet arch stem must be 'resnet' or 'cifar', got {arch['stem']!r}")
    return arch


def per_stage(name: str, value, default: Sequence) -> Tuple:
    """``value`` as one entry per stage: ``None`` keeps ``default``, a scalar repeats."""
    if value is None:
        return tuple(default)
    if isinstance(value, (int, bool)):
        return (value, ) * len(default)
    if len(value) != len(default):
        raise ValueError(f'{name} needs one entry per stage ({len(default)}), got {value}')
    return tuple(value)


def _retired(name: str) -> KeyError:
    return KeyError(f'PCENet: {name!r} was retired on 2026-12-07 (docs/history.md): '
                    f'{RETIRED[name]}; remove it from the config')


def resolve(group: str, cfg: Optional[dict], defaults: dict) -> dict:
    """``defaults`` updated by ``cfg``; an unknown key raises naming the group."""
    cfg = dict(cfg or {})
    for name in cfg:
        if name in RETIRED:
            raise _retired(name)
    unknown = set(cfg) - set(defaults)
    if unknown:
        raise KeyError(f'PCENet {group} has unknown keys {sorted(unknown)}; '
                       f'allowed: {sorted(defaults)}')
    return {**defaults, **cfg}


def reject_old_settings(init):
    """Wraps ``PCENet.__init__``: a setting that moved raises naming its new place, a
    retired one says so, before Python's bare "unexpected keyword argument"."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        for group in ('router_cfg', 'switch_cfg'):
            for name in (kwargs.get(group) or {}):
                if name in RETIRED:
                    raise _retired(name)
        for name in kwargs:
            if name in RETIRED:
                raise _retired(name)
            if name in MOVED:
                raise KeyError(f'PCENet: {name!r} is now {MOVED[name]}')
        return init(self, *args, **kwargs)
    return wrapper
