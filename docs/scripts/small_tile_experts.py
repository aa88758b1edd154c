"""An expert's 3x3 convolution of channels-last tiles, three ways: oneDNN's convolution
(``F.conv2d``), one matrix product of the neighbourhoods flattened in ``(c, ky, kx)`` order
(``Expert``'s matrix product up to commit 94ee4a6) and in ``(ky, kx, c)`` order (since then).
Forward alone (no grad) and forward + backward, ms, median of 9, for tiles of the digits'
stages 3 and 4 (``n`` tiles to one expert: 256-512 is what E = 8 experts get at batch
64-128, 2048-4096 what one expert gets of a collapsed routing). docs/performance.md, "The
routed step on the digits (seventh session)". From the repository root:

    python docs/scripts/small_tile_experts.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)


def median(fn, reps=9):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def conv(x, weight):
    return F.conv2d(x, weight)


def matmul_c_first(x, weight):
    n, c, q, _ = x.shape
    k = weight.shape[-1]
    p = q - k + 1
    if p == 1:
        cols = x.reshape(n, c * k * k)
    else:
        cols = x.permute(0, 2, 3, 1).unfold(1, k, 1).unfold(2, k, 1).reshape(n * p * p, -1)
    return F.linear(cols, weight.flatten(1)).view(n, p, p, -1).permute(0, 3, 1, 2)


def matmul_c_last(x, weight):
    n, c, q, _ = x.shape
    k = weight.shape[-1]
    p = q - k + 1
    tiles = x.permute(0, 2, 3, 1)
    if p == 1:
        cols = tiles.reshape(n, k * k * c)
    else:
        cols = tiles.unfold(1, k, 1).unfold(2, k, 1).permute(0, 1, 2, 4, 5, 3)
        cols = cols.reshape(n * p * p, k * k * c)
    flat = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return F.linear(cols, flat).view(n, p, p, -1).permute(0, 3, 1, 2)


WAYS = {'conv': conv, 'matmul (c, ky, kx)': matmul_c_first, 'matmul (ky, kx, c)': matmul_c_last}
print('| tiles (n, q, q, c) | output | ' + ' | '.join(
    f'{w} fwd / fwd+bwd' for w in WAYS) + ' |')
print('|---|---|' + '---|' * len(WAYS))
for c, q in ((176, 4), (352, 3)):
    for n in (256, 512, 2048, 4096):
        tiles = torch.randn(n, q, q, c, requires_grad=True)
        x = tiles.permute(0, 3, 1, 2)                   # NCHW view of channels-last tiles
        weight = torch.randn(c, c, 3, 3, requires_grad=True)
        want = conv(x, weight)
        cells = []
        for fn in WAYS.values():
            torch.testing.assert_close(fn(x, weight), want, atol=1e-3, rtol=1e-4)
            with torch.no_grad():
                forward = median(lambda: fn(x, weight))
            both = median(lambda: fn(x, weight).sum().backward())
            cells.append(f'{forward:.1f} / {both:.1f}')
        p = q - 2
        print(f'| ({n}, {q}, {q}, {c}) | {p}x{p} | ' + ' | '.join(cells) + ' |', flush=True)
