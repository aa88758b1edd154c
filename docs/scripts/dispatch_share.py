"""How much of each routed block is the dispatch itself: one block of each stage of a
PCENet-``tiny`` (32 images of 32 px, E = 8, k = 2), forward + backward, medians of 7 in
turns, of

- ``sparse``: ``sparse_dispatch`` with the block's experts;
- ``crop``: the same dispatch with experts that only crop their tiles (gather, weighting,
  concatenation and scatter, no convolution);
- ``alone``: the experts on tiles already gathered, sorted by expert;
- ``full``: ``k`` convolutions of one expert over the whole map (the same FLOPs).

Each patch goes to ``k`` experts drawn by a random permutation (balanced, as after the
switch). docs/performance.md, "The benchmark's routing (twelfth session)". From the
repository root:

    python docs/scripts/dispatch_share.py
"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402
from pce_mm.models import PCEBlock  # noqa: E402
from pce_mm.models.dispatch import PatchGrid, sparse_dispatch  # noqa: E402

torch.set_num_threads(2)


class Crop(torch.nn.Module):
    def forward(self, x):
        return x[:, :, 1:-1, 1:-1] * 1.0


def main():
    torch.manual_seed(0)
    model = b.build_backbone(dict(type='PCENet', arch='tiny', num_experts=8, top_k=2))
    model.train()
    model.set_phase(2)
    inputs = []

    def keep_input(block, args, out):
        inputs.append((block, block.reduce(args[0]).detach()))

    handles = [m.register_forward_hook(keep_input) for m in model.modules()
               if isinstance(m, PCEBlock)]
    with torch.no_grad():
        model(torch.randn(32, 3, 32, 32))
    for handle in handles:
        handle.remove()
    generator = torch.Generator().manual_seed(0)
    for block, h in inputs[::3]:                       # the first block of each stage
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
        times = b.interleaved_medians(dict(
            sparse=lambda: sparse_dispatch(h, grid, experts, indices, weights,
                                           halo).sum().backward(),
            crop=lambda: sparse_dispatch(h, grid, crops, indices, weights,
                                         halo).sum().backward(),
            alone=lambda: torch.cat([e(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) for e, c
                                     in zip(experts, tiles.split(counts))]).sum().backward(),
            full=lambda: sum(experts.experts[0](F.pad(h, (halo, ) * 4))
                             for _ in range(k)).sum().backward()), 'cpu', warmup=1, repeats=7)
        print(f'{tuple(h.shape)}, patch {grid.patch}: ' +
              ', '.join(f'{name} {t * 1e3:.1f} ms' for name, t in times.items()), flush=True)


if __name__ == '__main__':
    main()
