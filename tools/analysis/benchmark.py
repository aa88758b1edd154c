"""PCE's cost, side by side with ResNet, in one run.

    python tools/analysis/benchmark.py [--device cpu|cuda] [--json OUT] [--repeats 7]
                                       [--sections ...] [--arch tiny r18 r50] [--quick]
    python tools/analysis/benchmark.py --report OUT.json      # the tables of a saved run

Sections (a table each on stdout, everything in OUT):
1. ``pce_vs_resnet``: PCENet vs ResNet at matched active FLOPs, per preset: train-step
   throughput (forward + backward + SGD step, images/s) in phase 2 and phase 1, the memory
   the step needs (also with ``with_cp``), the host reads of tensor values a step makes
   (each a synchronisation on a GPU), FLOPs and parameters, active and total.
2. ``dispatch``: sparse vs dense dispatch of one PCE block at E=8, k=2 (forward +
   backward), and the time of that block as E grows at k=2.
3. ``context``: where the deformable attention sits, at a detection-sized input.
4. ``profile``: where a PCE training step's time goes, per preset, from the PyTorch
   profiler: the forward by block part and the backward's largest operators.
5. (cuda) mmcv's CUDA deformable-attention kernel vs its PyTorch path.
Every time is the median of ``--repeats`` runs after ``--warmup`` runs, the contenders of a
table timed in turns. The measuring is :mod:`pce_mm.analysis.benchmark`, the tables
:mod:`pce_mm.analysis.benchmark_report`.
"""
import argparse
import json
from typing import Dict, List, Optional

from pce_mm.analysis.benchmark import SECTIONS, run_benchmark
from pce_mm.analysis.benchmark_report import report
from pce_mm.analysis.timing import Timer
from pce_mm.analysis.train_step import PAIRS


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--json', help='write every figure to this file')
    parser.add_argument('--report', metavar='JSON',
                        help='print the tables of a saved run and measure nothing')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument('--arch', nargs='+', choices=[arch for arch, *_ in PAIRS],
                        help='presets of the whole-model sections (default: all)')
    parser.add_argument('--quick', action='store_true',
                        help='small inputs and one repeat: checks the tool, not the numbers')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.report:
        with open(args.report) as f:
            result = json.load(f)
    else:
        if args.quick:
            args.warmup, args.repeats = 1, 1
        result = run_benchmark(args.sections, Timer(args.device, args.warmup, args.repeats),
                               quick=args.quick, archs=args.arch)
    print(report(result))
    if args.json and not args.report:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
