"""How fast could the routed step be if routing cost nothing? Training steps of each PCENet
preset, timed in turns in one process beside its ResNet twin (the benchmark's inputs and
batches):

- ``routed``: phase 2 as it runs (router, sparse dispatch, experts, context), reached
  through the switch;
- ``routed_no_context``: the same with ``context='none'``;
- ``k_full_map_experts``: every block's expert stage replaced by ``top_k`` experts each
  convolving the whole map (``Conv -> BN -> ReLU``, outputs averaged): the routed step's
  active expert FLOPs with no router, no gather, no scatter and no context. Any dispatch,
  however fused, does at least this much work in the same operators, so this is the
  ceiling of dispatch engineering for the block as specified;
- ``phase_1``: the tied warm-up, one full-map expert (half the experts' FLOPs).

Prints s per step and ResNet's time over each (its throughput ratio). From the repository
root (2-3 min):

    python benchmarks/routing_ceiling.py [--repeats 5] [--warmup 1] [--arch tiny r18 r50]
                                         [--batch N]
"""
import argparse
from functools import partial
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from pce_mm.analysis.timing import interleaved_medians
from pce_mm.analysis.train_step import PAIRS, pce_spec, select_pairs, train_step


def full_map_experts(block, h: torch.Tensor, grid) -> torch.Tensor:
    """``top_k`` distinct experts of ``block`` on the whole map ``h``, averaged: phase 1's
    path, ``k`` times."""
    padded = F.pad(h, (block.experts.halo, ) * 4)
    k = block.top_k
    return sum(block.experts.experts[i](padded) for i in range(k)) / k


def use_full_map_experts(model: torch.nn.Module) -> None:
    """Phase 1's expert stage of every block of ``model`` becomes :func:`full_map_experts`
    (on these blocks only: an attribute of each instance)."""
    for block in model.blocks():
        block.warmup_experts_output = partial(full_map_experts, block)


def ceiling_steps(arch: str, resnet: dict, side: int, batch: int) -> Dict[str, Callable]:
    """The five training steps above, for one preset and its twin."""
    spec = pce_spec(arch)
    ceiling, ceiling_model, _ = train_step(spec, side, batch, 'cpu', phase=1)
    use_full_map_experts(ceiling_model)
    return dict(
        resnet=train_step(resnet, side, batch, 'cpu')[0],
        routed=train_step(spec, side, batch, 'cpu', phase=2)[0],
        routed_no_context=train_step(dict(spec, context='none'), side, batch, 'cpu',
                                     phase=2)[0],
        k_full_map_experts=ceiling,
        phase_1=train_step(spec, side, batch, 'cpu', phase=1)[0])


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--arch', nargs='+', default=[arch for arch, *_ in PAIRS])
    parser.add_argument('--batch', type=int, help="each preset's benchmark batch by default")
    parser.add_argument('--threads', type=int, default=2,
                        help='torch threads (the published runs: 2 cores)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for arch, resnet, side, batch in select_pairs(args.arch):
        batch = args.batch or batch
        times = interleaved_medians(ceiling_steps(arch, resnet, side, batch), 'cpu',
                                    warmup=args.warmup, repeats=args.repeats)
        print(f'{arch} (batch {batch}, {side} px): ' + ', '.join(
            f'{name} {t:.3f} s ({times["resnet"] / t:.2f})' for name, t in times.items()),
            flush=True)


if __name__ == '__main__':
    main()
