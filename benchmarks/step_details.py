"""Three small measurements of the routed step, medians taken in turns. From the repository
root:

    python benchmarks/step_details.py finite   # tiny with and without check_finite
    python benchmarks/step_details.py faults   # page faults and time a step, tiny and twin
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295 \\
        python benchmarks/step_details.py faults   # glibc keeping freed memory
    python benchmarks/step_details.py eval PCE_CKPT RESNET_CKPT   # digits forward, eval

``finite`` and ``faults`` time training steps of PCENet-tiny (routed, after the switch) at
the benchmark's batch of 32 (``--batch``). ``eval`` takes checkpoints of
``configs/pce_digits.py`` and ``configs/resnet_digits.py`` and times one forward of 128
random 28 px images (``--batch``), eval mode, no grad.
"""
import argparse
import os.path as osp
import resource
import statistics
import time
from typing import List, Optional

import torch

from pce_mm.analysis.timing import interleaved_medians
from pce_mm.analysis.train_step import PAIRS, host_reads, pce_spec, train_step


def finite(batch: int, warmup: int, repeats: int) -> None:
    """The check is one host read a step (all blocks' flags at once): counted beside."""
    steps = {f'check_finite={on}': train_step(pce_spec('tiny', check_finite=on), 32, batch,
                                              'cpu', phase=2)[0]
             for on in (True, False)}
    reads = {name: host_reads(step) for name, step in steps.items()}
    times = interleaved_medians(steps, 'cpu', warmup=warmup, repeats=repeats)
    print(', '.join(f'{name}: {t:.3f} s ({reads[name]} host reads)'
                    for name, t in times.items()))


def faults(batch: int, warmup: int, repeats: int) -> None:
    arch, twin, side, _ = PAIRS[0]                       # tiny and ResNet_CIFAR-18
    steps = dict(pce=train_step(pce_spec(arch), side, batch, 'cpu', phase=2)[0],
                 resnet=train_step(twin, side, batch, 'cpu')[0])
    times, counts = {name: [] for name in steps}, {name: [] for name in steps}
    for _ in range(warmup):
        for step in steps.values():
            step()
    for _ in range(repeats):
        for name, step in steps.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
            counts[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    for name in times:
        print(f'{name}: {statistics.median(times[name]):.3f} s a step, '
              f'{statistics.median(counts[name]):.0f} minor page faults a step')


def evaluate(pce_ckpt: str, resnet_ckpt: str, batch: int, warmup: int,
             repeats: int) -> None:
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from pce_mm.checkpoint import load_local

    def load(config: str, ckpt: str):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(Config.fromfile(config).model)
        model.load_state_dict(load_local(ckpt, map_location='cpu')['state_dict'])
        model.eval()             # mmpretrain's ResNet.train() returns None: no chaining
        return model

    configs = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs')
    models = dict(pce=load(osp.join(configs, 'pce_digits.py'), pce_ckpt),
                  resnet=load(osp.join(configs, 'resnet_digits.py'), resnet_ckpt))
    x = torch.rand(batch, 1, 28, 28)

    def forward(model):
        def run():
            with torch.no_grad():
                model(x, mode='tensor')
        return run

    times = interleaved_medians({k: forward(m) for k, m in models.items()}, 'cpu',
                                warmup=warmup, repeats=repeats)
    print(', '.join(f'{name}: {t:.3f} s' for name, t in times.items()))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', choices=['finite', 'faults', 'eval'])
    parser.add_argument('checkpoints', nargs='*', help='eval: PCE_CKPT RESNET_CKPT')
    parser.add_argument('--batch', type=int, help='32 (finite, faults), 128 (eval)')
    parser.add_argument('--warmup', type=int, help='1 (finite), 2 (faults, eval)')
    parser.add_argument('--repeats', type=int, help='7 (finite), 5 (faults, eval)')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch threads (the published runs: 2 cores)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.what == 'finite':
        finite(args.batch or 32, 1 if args.warmup is None else args.warmup, args.repeats or 7)
    elif args.what == 'faults':
        faults(args.batch or 32, 2 if args.warmup is None else args.warmup, args.repeats or 5)
    else:
        if len(args.checkpoints) != 2:
            parser.error('eval takes PCE_CKPT RESNET_CKPT')
        evaluate(*args.checkpoints, args.batch or 128,
                 2 if args.warmup is None else args.warmup, args.repeats or 5)


if __name__ == '__main__':
    main()
