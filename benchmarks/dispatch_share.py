"""How much of each routed block is the dispatch itself: the first block of each stage of a
PCENet-``tiny`` (32 images of 32 px, E = 8, k = 2), forward + backward, medians of 7 taken in
turns, of

- ``sparse``: ``sparse_dispatch`` with the block's experts;
- ``crop``: the same dispatch with experts that only crop their tiles (gather, weighting,
  concatenation and scatter, no convolution);
- ``alone``: the experts on tiles already gathered, sorted by expert;
- ``full``: ``k`` convolutions of one expert over the whole map (the same FLOPs).

Each patch goes to ``k`` experts drawn by a random permutation (balanced, as after the
switch). From the repository root:

    python benchmarks/dispatch_share.py [--batch 32] [--warmup 1] [--repeats 7]
"""
import argparse
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from pce_mm.analysis.timing import interleaved_medians
from pce_mm.analysis.train_step import build_backbone, pce_spec
from pce_mm.models import PCEBlock
from pce_mm.models.dispatch import PatchGrid, sparse_dispatch


class Crop(torch.nn.Module):
    """An expert that only drops its tile's halo."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 1:-1, 1:-1] * 1.0


def first_block_inputs(batch: int) -> List[Tuple[PCEBlock, torch.Tensor]]:
    """``(block, reduced map)`` of the first block of each stage of a routed PCENet-tiny
    on ``batch`` random 32 px images."""
    torch.manual_seed(0)
    model = build_backbone(pce_spec('tiny')).train()
    model.set_phase(2)
    inputs = []

    def keep_input(block, args, out):
        inputs.append((block, block.reduce(args[0]).detach()))

    handles = [block.register_forward_hook(keep_input) for block in model.blocks()]
    with torch.no_grad():
        model(torch.randn(batch, 3, 32, 32))
    for handle in handles:
        handle.remove()
    firsts = {id(model.stage_blocks(s)[0]) for s in range(len(model.res_layers))}
    return [(block, h) for block, h in inputs if id(block) in firsts]


def share_steps(block: PCEBlock, h: torch.Tensor,
                generator: torch.Generator) -> Dict[str, Callable]:
    """The four steps above for one block and its reduced map ``h``."""
    h = h.requires_grad_()
    experts, halo, k = block.experts, block.experts.halo, block.top_k
    grid = PatchGrid(h.shape[2], h.shape[3], block.patch_size)
    patches = h.shape[0] * grid.num_patches
    indices = torch.stack([torch.randperm(len(experts), generator=generator)[:k]
                           for _ in range(patches)]).view(h.shape[0], -1, k)
    weights = torch.full(indices.shape, 1 / k)
    counts = torch.bincount(indices.flatten(), minlength=len(experts)).tolist()
    q = grid.patch + 2 * halo
    tiles = torch.randn(indices.numel(), q, q, h.shape[1], requires_grad=True)
    crops = [Crop() for _ in experts]
    return dict(
        sparse=lambda: sparse_dispatch(h, grid, experts, indices, weights,
                                       halo).sum().backward(),
        crop=lambda: sparse_dispatch(h, grid, crops, indices, weights, halo).sum().backward(),
        alone=lambda: torch.cat([e(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) for e, c
                                 in zip(experts, tiles.split(counts))]).sum().backward(),
        full=lambda: sum(experts.experts[0](F.pad(h, (halo, ) * 4))
                         for _ in range(k)).sum().backward())


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--threads', type=int, default=2,
                        help='torch threads (the published runs: 2 cores)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    for block, h in first_block_inputs(args.batch):
        times = interleaved_medians(share_steps(block, h, generator), 'cpu',
                                    warmup=args.warmup, repeats=args.repeats)
        print(f'{tuple(h.shape)}, patch {block.patch_size}: ' +
              ', '.join(f'{name} {t * 1e3:.1f} ms' for name, t in times.items()), flush=True)


if __name__ == '__main__':
    main()
