"""Config edits shared by ``tools/train.py`` and ``tools/test.py``, for all three tasks."""
from typing import Any, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['merge_cli_options', 'adapt_to_cpu', 'enable_visualization', 'enable_amp',
           'add_pce_hooks']


def _replace(node: Any, key: str, old: Any, new: Any) -> int:
    """Sets ``key`` to ``new`` wherever it equals ``old``, in nested dicts and lists;
    returns how many it set."""
    count = 0
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and v == old:
                node[k] = new
                count += 1
            else:
                count += _replace(v, key, old, new)
    elif isinstance(node, (list, tuple)):
        for v in node:
            count += _replace(v, key, old, new)
    return count


def merge_cli_options(cfg: Config, options: Optional[dict]) -> Config:
    """``--cfg-options``, where ``data_root=PATH`` also moves every dataset that used it.

    mm configs resolve ``data_root`` into each (often nested) dataset when the file is
    read, so overriding the top-level variable alone changes nothing; here it does.
    """
    if not options:
        return cfg
    old_root = cfg.get('data_root')
    cfg.merge_from_dict(options)
    new_root = cfg.get('data_root')
    if 'data_root' in options and old_root is not None and new_root != old_root:
        for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(field):
                _replace(cfg[field], 'data_root', old_root, new_root)
    return cfg


def adapt_to_cpu(cfg: Config) -> Config:
    """What a config written for GPUs needs to run on a CPU-only machine.

    ``SyncBN`` needs CUDA, so it becomes ``BN``; distributed runs use gloo instead of NCCL,
    and DDP gets no ``device_ids`` (it refuses them for CPU modules). Denormal floats are
    flushed: they slowed CPU training 3-6x (seen with Faster R-CNN at lr 0.02).
    """
    if torch.cuda.is_available():
        return cfg
    torch.set_flush_denormal(True)
    # A walk of the dict, not a search of ``cfg.pretty_text``: formatting a config with
    # yapf costs 0.2-0.5 s, in every tool run and every test's Runner.
    if _replace(cfg._cfg_dict, 'type', 'SyncBN', 'BN'):
        print_log('No CUDA: SyncBN layers of the config run as BN', logger='current')
    if cfg.get('launcher', 'none') != 'none':
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    return cfg


def enable_visualization(cfg: Config, show_dir: str) -> Config:
    """Turns on the task's visualization hook so ``tools/test.py`` draws predictions."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs a `visualization` hook in default_hooks')
    if hook['type'] == 'DetVisualizationHook':
        hook.update(draw=True, test_out_dir=show_dir)
    elif hook['type'] == 'SegVisualizationHook':
        hook.update(draw=True)
        cfg.visualizer['save_dir'] = show_dir
    else:                       # mmpretrain's VisualizationHook, every image as its tool does
        hook.update(enable=True, out_dir=show_dir, interval=1)
    return cfg


def enable_amp(cfg: Config) -> Config:
    """``--amp``: mmengine's ``AmpOptimWrapper`` (fp16, dynamic loss scale) on a GPU;
    bfloat16 autocast without loss scale on a CPU, where ``AmpOptimWrapper`` cannot run."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'BF16OptimWrapper'
        print_log('No CUDA: --amp trains under bfloat16 autocast', logger='current')
    return cfg


def add_pce_hooks(cfg: Config) -> Config:
    """Adds ``RouterLossScaleHook`` and ``ExpertLoadHook`` unless the config has them: a
    stock config with only its backbone swapped for PCENet then gets the router losses
    right under fp16 too, and the experts' loads in TensorBoard. Both do nothing for models
    without PCENet."""
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ('RouterLossScaleHook', 'ExpertLoadHook'):
        if not any(h.get('type') == name for h in hooks):
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks
    return cfg
