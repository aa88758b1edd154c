"""Winograd's algorithm on the experts' tiles, three measurements (docs/performance.md,
"Winograd tiles (eleventh session)"). From the repository root:

    python docs/scripts/winograd_tiles.py [error] [transforms] [speed]

- ``error``: float32 error of F(4x4, 3x3) at two sets of points, and of F(2x2, 3x3), against
  a float64 convolution, beside oneDNN's float32 convolution's error (Toom-Cook matrices
  built here from the points).
- ``transforms``: five ways of applying a tile transform ``B^T d B`` to all the tiles.
- ``speed``: an expert's 3x3 convolution of channels-last tiles, forward + backward (ms,
  medians of 9 taken in turns), oneDNN against ``winograd_conv``; patches of 8 (10x10
  tiles) as 2x2 overlapping 6x6 sub-tiles each.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, 'tools/analysis')
from benchmark import interleaved_medians  # noqa: E402
from pce_mm.models.winograd import (_input, _kernel, _tiles_first, _transforms,  # noqa: E402
                                     winograd_conv)

torch.set_num_threads(2)


def toom_cook(points, m, r=3):
    """``(B^T, G, A^T)`` of F(m, r) at the finite ``points`` and infinity."""
    n = m + r - 1
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for i, a in enumerate(points):
        at[:, i] = [a**e for e in range(m)]
        g[i] = [a**e / np.prod([a - b for j, b in enumerate(points) if j != i])
                for e in range(r)]
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1
    # B^T solves sum_k A^T[i, k] G[k, j] B^T[k, l] = [l == i + j] for all i, j, l.
    eqs = np.zeros((m * r * n, n * n))
    rhs = np.zeros(m * r * n)
    for row, (i, j, l) in enumerate((i, j, l) for i in range(m) for j in range(r)
                                    for l in range(n)):
        for k in range(n):
            eqs[row, k * n + l] = at[i, k] * g[k, j]
        rhs[row] = float(l == i + j)
    bt = np.linalg.lstsq(eqs, rhs, rcond=None)[0].reshape(n, n)
    assert np.abs(eqs @ bt.reshape(-1) - rhs).max() < 1e-9
    return bt, g, at


def winograd_float32(tiles, weight, bt, g, at):
    """``winograd_conv``'s forward pass with other transforms, in float32."""
    q, m = bt.shape[0], at.shape[0]
    bt, g, at = (torch.kron(torch.tensor(x), torch.tensor(x)).float() for x in (bt, g, at))
    n, c_out = tiles.shape[0], weight.shape[0]
    prods = torch.bmm(_input(bt, tiles), _kernel(g, weight))
    return _tiles_first(at, prods).view(m, m, n, c_out).permute(2, 0, 1, 3)


def error():
    print('| F(m x m, 3x3) | points | max error, float32 Winograd | oneDNN float32 |')
    print('|---|---|---|---|')
    for m, points in ((2, (0, 1, -1)), (4, (0, 1, -1, 2, -2)), (4, (0, 1, -1, 2, -0.5))):
        torch.manual_seed(0)
        tiles = torch.randn(256, m + 2, m + 2, 64, dtype=torch.float64)
        weight = torch.randn(32, 64, 3, 3, dtype=torch.float64) / 24
        exact = F.conv2d(tiles.permute(0, 3, 1, 2), weight).permute(0, 2, 3, 1)
        ours = winograd_float32(tiles.float(), weight.float(), *toom_cook(points, m))
        direct = F.conv2d(tiles.float().permute(0, 3, 1, 2), weight.float())
        err = [(y.double() - exact).abs().max().item()
               for y in (ours, direct.permute(0, 2, 3, 1))]
        print(f'| {m} | {points} | {err[0]:.2e} | {err[1]:.2e} |')


def transforms():
    print('| tiles (q, n, c) | mm, tile axes first | bmm per tile | slices | einsum | '
          'one (q q) x (q q) product |')
    print('|---|---|---|---|---|---|')
    for q, n, c in ((6, 512, 88), (4, 512, 176), (6, 128, 88)):
        bt = torch.tensor(toom_cook((0, 1, -1, 2, -0.5) if q == 6 else (0, 1, -1), q - 2)[0],
                          dtype=torch.float32)
        lead = torch.randn(q, q, n, c)
        first = lead.permute(2, 0, 1, 3).contiguous()
        kron = _transforms(q - 2, torch.float32, torch.device('cpu'))[0]

        def side(x):                                   # rows of bt as sums of slices
            return torch.stack([sum(x[j] * float(bt[i, j]) for j in range(q) if bt[i, j])
                                for i in range(q)])
        ways = dict(
            mm=lambda: torch.matmul(bt, torch.mm(bt, lead.view(q, -1)).view(q, q, n * c)),
            bmm=lambda: torch.matmul(bt, torch.matmul(bt, first.view(n, q, q * c))
                                     .view(n * q, q, c)),
            slices=lambda: side(side(lead.view(q, -1)).view(q, q, n * c).transpose(0, 1)),
            einsum=lambda: torch.einsum('ai,bj,ijnc->abnc', bt, bt, lead),
            kron=lambda: torch.mm(kron, lead.view(q * q, -1)))
        t = interleaved_medians(ways, 'cpu', warmup=2, repeats=15)
        print(f'| {q}, {n}, {c} | ' + ' | '.join(f'{v * 1e3:.2f}' for v in t.values()) + ' |')


def subtiled(tiles, weight):
    """10x10 tiles as 2x2 overlapping 6x6 Winograd tiles (autograd adds the overlaps)."""
    n, c = tiles.shape[0], tiles.shape[-1]
    windows = tiles.unfold(1, 6, 4).unfold(2, 6, 4)                  # (n, 2, 2, c, 6, 6)
    windows = windows.permute(0, 1, 2, 4, 5, 3).reshape(4 * n, 6, 6, c)
    out = winograd_conv(windows, weight).view(n, 2, 2, 4, 4, -1)
    return out.permute(0, 1, 3, 2, 4, 5).reshape(n, 8, 8, -1)


def speed():
    print('| tiles to one expert (n, q, c) | oneDNN ms | Winograd ms | oneDNN / Winograd |')
    print('|---|---|---|---|')
    for n, q, c in ((128, 6, 88), (512, 6, 88), (128, 6, 96), (128, 4, 176), (512, 4, 176),
                    (128, 4, 192), (128, 10, 48), (512, 10, 48)):
        tiles = torch.randn(n, q, q, c, requires_grad=True)
        weight = (torch.randn(c, c, 3, 3) / (3 * c**0.5)).requires_grad_()
        wino = subtiled if q == 10 else winograd_conv
        t = interleaved_medians(
            dict(onednn=lambda: F.conv2d(tiles.permute(0, 3, 1, 2), weight).sum().backward(),
                 winograd=lambda: wino(tiles, weight).sum().backward()),
            'cpu', warmup=2, repeats=9)
        print(f'| {n}, {q}, {c} | {t["onednn"] * 1e3:.2f} | {t["winograd"] * 1e3:.2f} | '
              f'{t["onednn"] / t["winograd"]:.2f} |')


for part in sys.argv[1:] or ['error', 'transforms', 'speed']:
    globals()[part]()
