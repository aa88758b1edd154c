"""How fast could the routed step be if routing cost nothing? Training steps of each PCENet
preset, timed in turns in one process beside its ResNet twin (the benchmark's inputs,
batches and ``interleaved_medians``):

- ``routed``: phase 2 as it runs (router, sparse dispatch, experts, context);
- ``routed, no context``: the same with ``context='none'``;
- ``k full-map experts``: every block's expert stage replaced by ``top_k`` experts each
  convolving the whole map (``Conv -> BN -> ReLU``, outputs averaged): the routed step's
  active expert FLOPs with no router, no gather, no scatter and no context. Any dispatch,
  however fused, does at least this much work in the same ops, so this is the ceiling of
  dispatch engineering for the block as specified;
- ``phase 1``: the tied warm-up, one full-map expert (half the experts' FLOPs).

docs/performance.md, "The ceiling of the routed step (twelfth session)". From the
repository root:

    python docs/scripts/routing_ceiling.py [--repeats 5] [--arch tiny r18 r50]
"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402
from pce_mm.models import PCEBlock  # noqa: E402

torch.set_num_threads(2)


def full_map_experts(block: PCEBlock, h: torch.Tensor, grid) -> torch.Tensor:
    """``top_k`` distinct experts on the whole map, averaged: phase 1's path, k times."""
    padded = F.pad(h, (block.experts.halo, ) * 4)
    k = block.top_k
    return sum(block.experts.experts[i](padded) for i in range(k)) / k


def with_full_map_experts(step):
    def run():
        PCEBlock.warmup_experts_output = full_map_experts
        try:
            step()
        finally:
            PCEBlock.warmup_experts_output = original
    return run


original = PCEBlock.warmup_experts_output
args, pairs = b.script_pairs()
for arch, resnet, side, batch in pairs:
    spec = b.pce_spec(arch)
    steps = dict(
        resnet=b.train_step(resnet, side, batch, 'cpu')[0],
        routed=b.train_step(spec, side, batch, 'cpu', phase=2)[0],
        routed_no_context=b.train_step(dict(spec, context='none'), side, batch, 'cpu',
                                       phase=2)[0],
        k_full_map_experts=with_full_map_experts(
            b.train_step(spec, side, batch, 'cpu', phase=1)[0]),
        phase_1=b.train_step(spec, side, batch, 'cpu', phase=1)[0])
    times = b.interleaved_medians(steps, 'cpu', warmup=1, repeats=args.repeats)
    print(f'{arch} (batch {batch}, {side} px): ' + ', '.join(
        f'{name} {t:.3f} s ({times["resnet"] / t:.2f})' for name, t in times.items()),
        flush=True)
