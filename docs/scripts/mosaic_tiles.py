"""An expert's 3x3 convolution of channels-last tiles with their halo, two ways: oneDNN's
convolution of the batch of ``n`` tiles (what ``Expert`` runs) and of one tall image made
of the same tiles stacked (a free view of the channels-last tiles), whose outputs that
straddle two tiles are computed and dropped (``q / p`` times the FLOPs). Forward +
backward and forward alone, ms, medians of 9 taken in turns; the shapes are the ``tiny``
preset's stages at batch 32, E = 8, k = 2. docs/performance.md, "Tiles stacked into one
image (tenth session)". From the repository root:

    python docs/scripts/mosaic_tiles.py
"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, 'tools/analysis')
from benchmark import interleaved_medians  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)


def stacked(tiles, weight, n, q, p, c):
    """The tiles as one ``(1, c, n * q, q)`` image; each tile's ``p`` valid output rows."""
    y = F.conv2d(tiles.view(1, n * q, q, c).permute(0, 3, 1, 2), weight)  # (1, c, nq-2, p)
    return F.pad(y, (0, 0, 0, 2)).view(c, n, q, p)[:, :, :p].permute(1, 0, 2, 3)


# (tiles to one expert, channels, patch side)
for n, c, p in [(256, 48, 8), (512, 88, 4), (1024, 88, 4), (512, 176, 2), (2048, 176, 2)]:
    q = p + 2
    weight = torch.randn(c, c, 3, 3, requires_grad=True)
    tiles = torch.randn(n, q, q, c, requires_grad=True)             # channels-last rows

    def batch():
        return F.conv2d(tiles.permute(0, 3, 1, 2), weight)

    def tall():
        return stacked(tiles, weight, n, q, p, c)

    with torch.no_grad():
        err = (batch() - tall()).abs().max().item()
        fwd = interleaved_medians(dict(batch=batch, tall=tall), 'cpu', 2, 9)
    both = interleaved_medians(dict(batch=lambda: batch().sum().backward(),
                                    tall=lambda: tall().sum().backward()), 'cpu', 2, 9)
    print(f'n={n} c={c} p={p} (max diff {err:.1e}): forward + backward, batch of tiles '
          f'{both["batch"] * 1e3:.1f}, one tall image {both["tall"] * 1e3:.1f}; forward '
          f'{fwd["batch"] * 1e3:.1f} / {fwd["tall"] * 1e3:.1f}', flush=True)
