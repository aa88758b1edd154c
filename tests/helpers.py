"""Building a real Runner from one of the project's configs, shrunk to run in seconds."""
import importlib.util
import itertools
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

from pce_mm.utils import adapt_to_cpu, merge_cli_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
_runs = itertools.count()

# PCENet-tiny's layout (CIFAR stem, patches 8-4-2-1, every stage routed, stages 2-4 with
# deformable attention) at a quarter of its widths and one block a stage: what the MNIST
# end-to-end tests train, for a fraction of the full preset's time.
NARROW_ARCH = dict(stem='cifar', stem_channels=16, channels=(16, 32, 64, 128),
                   expert_channels=(16, 24, 48, 96), depths=(1, 1, 1, 1), strides=(1, 2, 2, 2),
                   patch_sizes=(8, 4, 2, 1), stage_with_context=(False, True, True, True))
NARROW_OPTIONS = {'model.backbone.arch': dict(_delete_=True, **NARROW_ARCH),
                  'model.head.in_channels': NARROW_ARCH['channels'][-1]}


def narrow_pce_config(path: str, base: str = 'pce_mnist', text: str = '',
                      **backbone) -> str:
    """Writes a config at ``path``: ``configs/{base}.py`` (a one-channel classification
    config: ``pce_mnist``, ``pce_digits``) with :data:`NARROW_ARCH` and the ``backbone``
    settings, then ``text`` (without a ``model = ...`` of its own)."""
    settings = dict(arch=dict(_delete_=True, **NARROW_ARCH), **backbone)
    with open(path, 'w') as f:
        f.write(f"_base_ = '{REPO}/configs/{base}.py'\n"
                f"model = dict(backbone={settings!r}, "
                f"head=dict(in_channels={NARROW_ARCH['channels'][-1]}))\n{text}")
    return path


def narrow_pce_mnist(path: str, text: str = '', **backbone) -> str:
    """:func:`narrow_pce_config` of ``configs/pce_mnist.py``."""
    return narrow_pce_config(path, 'pce_mnist', text, **backbone)


def load_config(name: str, options: Optional[dict] = None) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'{name}.py'))
    merge_cli_options(cfg, options)
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[field].update(num_workers=0, persistent_workers=False)
    return cfg


def build_runner(cfg: Config, work_dir: str) -> Runner:
    cfg.work_dir = work_dir
    # Runners built within the same second would otherwise share a logger; and mm's configs
    # name their visualizer 'visualizer', so a later runner would get an earlier one (and
    # write into its work dir, removed once that test passed).
    cfg.experiment_name = f'{osp.basename(work_dir)}_{next(_runs)}'
    if cfg.get('visualizer'):
        cfg.visualizer.name = cfg.experiment_name
    adapt_to_cpu(cfg)
    return Runner.from_cfg(cfg)


def load_tool(path: str):
    """A script under tools/ as a module: a test calls its ``main(argv)`` in this process
    instead of paying a new process's imports (about 10 s)."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

