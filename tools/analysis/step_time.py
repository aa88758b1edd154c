"""Time a config's training step at its own batch and image size, on this machine, without
the real data: small files in the dataset's official format are written to a temporary
folder, and the config trains on them through mmengine's Runner.

    python tools/analysis/step_time.py CONFIG [CONFIG ...] [--steps 3] [--warmup 1]
                                       [--phase 1|2]

Prints one line per config, the median of ``--steps`` iterations (data loading included)
after ``--warmup``, and a markdown table at the end. A PCENet backbone is timed in phase 2
(routed) unless ``--phase 1`` asks for the expert warm-up. Phase 2 is reached as training
reaches it: one iteration in phase 1, then the switch (experts tied, routers set by k-means,
balanced) on the next; neither is timed.
"""
import argparse
import math
import os.path as osp
import statistics
import tempfile

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import pce_mm  # noqa: F401  (compat fixes and registration)
from pce_mm.datasets.synthetic import (write_cifar10, write_mnist, write_pcam,
                                       write_tiny_imagenet)
from pce_mm.datasets.voc_demo import make_demo_voc
from pce_mm.models import PCENet
from pce_mm.utils import adapt_to_cpu, merge_cli_options


def dataset_type(cfg: Config) -> str:
    dataset = cfg.train_dataloader.dataset
    while 'dataset' in dataset or 'datasets' in dataset:
        dataset = dataset.get('dataset') or dataset['datasets'][0]
    return dataset['type']


def write_data(kind: str, root: str, samples: int) -> dict:
    """Official-format data with at least ``samples`` training samples; returns the
    --cfg-options pointing the config at it."""
    if kind == 'MNIST':
        write_mnist(root, num_train=samples, num_test=4)
    elif kind == 'CIFAR10':
        write_cifar10(root, per_batch=math.ceil(samples / 5))
        return {'data_root': root, 'train_dataloader.dataset.type': 'SyntheticCIFAR10'}
    elif kind == 'TinyImageNet':
        write_tiny_imagenet(root, per_class=math.ceil(samples / 3), num_val=4)
    elif kind == 'PCam':
        write_pcam(root, sizes=(('train', samples), ('valid', 4), ('test', 4)))
    elif kind in ('VOCDataset', 'PascalVOCDataset'):
        # VOC's typical 500x375 photographs; the config's pipeline resizes them.
        make_demo_voc(root, num_train=max(samples, 4), num_test=2, size=(375, 500))
        return {'data_root': root + ('/VOC2012' if kind == 'PascalVOCDataset' else '/')}
    else:
        raise ValueError(f'step_time.py cannot make data for dataset type {kind!r}')
    return {'data_root': root}


class PhaseHook(Hook):
    """Phase 1 for the first iteration, then ``phase``: a fresh router forced into phase 2
    sends every patch to the same two experts within a few steps (near-zero logits under
    loss-free balancing's bias), where the switch gives the balanced routing training has
    (docs/performance.md, "The benchmark tool")."""

    def __init__(self, phase: int):
        self.phase = phase

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter > 1:                 # set at iterations 0 and 1, then kept
            return
        for module in runner.model.modules():
            if isinstance(module, PCENet):
                module.set_phase(1 if runner.iter == 0 else self.phase)


def step_time(cfg: Config, steps: int, warmup: int, phase: int, work_dir: str) -> float:
    """Median seconds of a training step of ``cfg`` (changed in place to train here)."""
    batch = cfg.train_dataloader.batch_size
    skipped = warmup + 2     # phase 1's iteration and the switch's (for every config alike)
    iters = steps + skipped
    options = write_data(dataset_type(cfg), osp.join(work_dir, 'data'), batch * iters)
    merge_cli_options(cfg, options)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.work_dir = osp.join(work_dir, 'work')
    cfg.experiment_name = osp.splitext(osp.basename(cfg.filename))[0]
    # mm configs name their visualizer 'visualizer': the next config would reuse this one,
    # with this run's (deleted) folder.
    cfg.visualizer.name = cfg.experiment_name
    adapt_to_cpu(cfg)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(PhaseHook(phase), priority='VERY_HIGH')
    runner.train()
    times = runner.message_hub.get_scalar('train/time').data[0]
    return statistics.median(times[skipped:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--phase', type=int, choices=[1, 2], default=2,
                        help='the PCE training phase to time')
    args = parser.parse_args()
    rows = []
    for config in args.configs:
        cfg = Config.fromfile(config)
        batch = cfg.train_dataloader.batch_size
        with tempfile.TemporaryDirectory() as tmp:
            seconds = step_time(cfg, args.steps, args.warmup, args.phase, tmp)
        print(f'STEP {config}: {seconds:.3f} s/step (batch {batch})')
        rows.append((config, batch, seconds))
    print('\n| config | batch | s / step |\n|---|---|---|')
    for config, batch, seconds in rows:
        print(f'| `{osp.basename(config)}` | {batch} | {seconds:.2f} |')


if __name__ == '__main__':
    main()
