"""An expert's 3x3 convolution of channels-last tiles with their halo, two ways: oneDNN's
convolution of the batch of ``n`` tiles (what ``Expert`` runs) and of one tall image made
of the same tiles stacked (a free view of the channels-last tiles), whose outputs that
straddle two tiles are computed and dropped (``q / p`` times the FLOPs). Forward +
backward (twice, in turns) and forward alone, ms, median of 7; the shapes are the
``tiny`` preset's stages at batch 32, E = 8, k = 2. docs/performance.md, "Tiles stacked
into one image (tenth session)". From the repository root:

    python docs/scripts/mosaic_tiles.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)


def med(fn, reps=7):
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def stacked(tiles, weight, n, q, p, c):
    """The tiles as one ``(1, c, n * q, q)`` image; each tile's ``p`` valid output rows."""
    y = F.conv2d(tiles.view(1, n * q, q, c).permute(0, 3, 1, 2), weight)  # (1, c, nq-2, p)
    return F.pad(y, (0, 0, 0, 2)).view(c, n, q, p)[:, :, :p].permute(1, 0, 2, 3)


# (tiles to one expert, channels, patch side)
for n, c, p in [(256, 48, 8), (512, 88, 4), (1024, 88, 4), (512, 176, 2), (2048, 176, 2)]:
    q = p + 2
    weight = torch.randn(c, c, 3, 3, requires_grad=True)
    tiles = torch.randn(n, q, q, c, requires_grad=True)             # channels-last rows
    with torch.no_grad():
        err = (F.conv2d(tiles.permute(0, 3, 1, 2), weight)
               - stacked(tiles, weight, n, q, p, c)).abs().max().item()

    def batch():
        F.conv2d(tiles.permute(0, 3, 1, 2), weight).sum().backward()

    def tall():
        stacked(tiles, weight, n, q, p, c).sum().backward()

    def batch_fwd():
        with torch.no_grad():
            F.conv2d(tiles.permute(0, 3, 1, 2), weight)

    def tall_fwd():
        with torch.no_grad():
            stacked(tiles, weight, n, q, p, c)

    r = [med(f) for f in (batch, tall, batch, tall, batch_fwd, tall_fwd)]
    print(f'n={n} c={c} p={p} (max diff {err:.1e}): forward + backward, batch of tiles '
          f'{r[0]:.1f} / {r[2]:.1f}, one tall image {r[1]:.1f} / {r[3]:.1f}; forward '
          f'{r[4]:.1f} / {r[5]:.1f}', flush=True)
