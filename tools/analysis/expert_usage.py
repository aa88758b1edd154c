"""Which experts fire on which classes: runs a dataset split through the model and counts,
per PCE stage, each patch's top-1 expert (the first the block ran) under its class (image
label, box or mask), and every expert's load.

    python tools/analysis/expert_usage.py CONFIG CHECKPOINT --out-dir DIR
        [--split val|test] [--block last|first] [--device cpu] [--cfg-options k=v ...]

Writes DIR/usage_stage<s>.png (class x expert heat-map) and .csv, and DIR/usage.json with
the count matrices, the normalised mutual information between expert and class per stage
(0: experts ignore the class; 1: each determines the other), each expert's load (its
share of the top-k assignments) and ``busiest``, the largest load over the uniform
``1 / E``, as the training log's ``router_s<s>_imbalance`` but over the whole split.
"""
import argparse
import csv
import json
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.config import DictAction
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

import pce_mm  # noqa: F401  (compat fixes and registration)
from pce_mm.analysis import (accumulate, load_model, normalized_mutual_info, patch_classes,
                             route_batch)
from pce_mm.analysis.figures import draw_usage_matrix


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--split', choices=['val', 'test'], default='val')
    parser.add_argument('--block', choices=['last', 'first'], default='last')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. data_root=data/VOCdevkit/')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg, model = load_model(args.config, args.checkpoint, args.device, args.cfg_options)
    loader = Runner.build_dataloader(cfg[f'{args.split}_dataloader'])
    classes = list(loader.dataset.metainfo['classes'])
    rows = classes + ['none']
    matrices, loads = {}, {}
    progress = ProgressBar(len(loader.dataset))
    for data in loader:
        _, samples, routings = route_batch(model, data, args.block)
        for routing in routings:
            matrix = matrices.setdefault(
                routing.stage, np.zeros((len(rows), routing.probs.shape[-1]), np.int64))
            accumulate(matrix, routing, patch_classes(routing, samples, none=len(classes)))
            loads[routing.stage] = loads.get(routing.stage, 0) + np.bincount(
                routing.chosen.cpu().reshape(-1).numpy(), minlength=matrix.shape[1])
        for _ in samples:
            progress.update()
    print()
    os.makedirs(args.out_dir, exist_ok=True)
    summary = dict(config=args.config, checkpoint=args.checkpoint, split=args.split,
                   block=args.block, rows=rows, stages={})
    for stage, matrix in matrices.items():
        nmi = normalized_mutual_info(matrix)
        load = loads[stage] / loads[stage].sum()
        busiest = float(load.max() * len(load))
        summary['stages'][f'stage{stage}'] = dict(counts=matrix.tolist(), nmi=nmi,
                                                  patches=int(matrix.sum()),
                                                  load=load.tolist(), busiest=busiest)
        with open(osp.join(args.out_dir, f'usage_stage{stage}.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['class'] + [f'E{i}' for i in range(matrix.shape[1])])
            writer.writerows([name] + row for name, row in zip(rows, matrix.tolist()))
        keep = matrix.sum(1) > 0                       # classes absent from the split
        draw_usage_matrix(matrix[keep], [r for r, k in zip(rows, keep) if k],
                          osp.join(args.out_dir, f'usage_stage{stage}.png'),
                          f'stage {stage} ({args.block} block), {args.split}: NMI {nmi:.3f}')
        print(f'stage {stage}: {int(matrix.sum())} patches, NMI(expert; class) = {nmi:.4f}, '
              f'busiest expert {busiest:.2f}x its uniform share')
    with open(osp.join(args.out_dir, 'usage.json'), 'w') as f:
        json.dump(summary, f, indent=1)


if __name__ == '__main__':
    main()
