"""Evaluate a checkpoint with the config's test loop and metric (mAP, mIoU, top-1 ...).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--split test|val]
                                           [--out FILE [--out-item pred|metrics]]
                                           [--show-dir DIR] [--phase 1|2]
                                           [--cfg-options k=v ...]

``--split val`` evaluates on the config's validation split (its ``val_dataloader`` and
``val_evaluator``) instead of the test split. ``--out`` dumps the predictions (a ``.pkl``),
or with ``--out-item metrics`` the metrics (``.json``, ``.yaml`` or ``.pkl``), as
mmpretrain's test tool does.

A PCENet runs in the phase it last trained in, unless ``--phase`` says which: ``--phase 2``
on a checkpoint of phase 1 runs the switch (tied experts, routers from the first batch)
first, as training would.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.fileio import dump
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import pce_mm  # noqa: F401  (compat fixes and registration before any config is read)
from pce_mm.models import PCENet
from pce_mm.utils import adapt_to_cpu, enable_visualization, merge_cli_options


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation results')
    parser.add_argument('--split', choices=['test', 'val'], default='test',
                        help='evaluate on the test split (default) or the validation split')
    parser.add_argument('--out', help='dump the predictions (.pkl) or the metrics to a file')
    parser.add_argument('--out-item', choices=['pred', 'metrics'], default='pred',
                        help='what --out holds (default: the predictions)')
    parser.add_argument('--show-dir', help='draw predictions into this directory')
    parser.add_argument('--phase', type=int, choices=[1, 2],
                        help="PCENet's phase: 1 expert warm-up, 2 routed (default: the "
                        'phase it last trained in)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. data_root=data/VOCdevkit/')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    if args.out is not None and args.out_item == 'pred' and \
            not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out of the predictions must name a .pkl file, got {args.out}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cli_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    adapt_to_cpu(cfg)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.phase is not None:
        backbones = [m for m in runner.model.modules() if isinstance(m, PCENet)]
        if not backbones:
            raise ValueError(f'--phase {args.phase}: {args.config} has no PCENet')
        for backbone in backbones:
            backbone.set_phase(args.phase)
    loop = runner.val if args.split == 'val' else runner.test
    if args.out is not None and args.out_item == 'pred':
        evaluator = runner.val_evaluator if args.split == 'val' else runner.test_evaluator
        evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = loop()
    if args.out is not None and args.out_item == 'metrics':
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
