"""Building a real Runner from one of the project's configs, shrunk to run in seconds."""
import itertools
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

from pce_mm.utils import adapt_to_cpu, merge_cli_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
_runs = itertools.count()


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
