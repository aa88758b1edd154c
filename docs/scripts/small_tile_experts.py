"""An expert's 3x3 convolution of channels-last tiles, three ways: oneDNN's convolution
(the expert's ``conv``), one matrix product of the neighbourhoods flattened in
``(c, ky, kx)`` order (``Expert``'s matrix product up to commit 94ee4a6, kept here) and in
``(ky, kx, c)`` order (``Expert._conv_as_matmul`` since then).
Forward alone (no grad) and forward + backward, ms, median of 9, for tiles of the digits'
stages 3 and 4 (``n`` tiles to one expert: 256-512 is what E = 8 experts get at batch
64-128, 2048-4096 what one expert gets of a collapsed routing). docs/performance.md, "The
routed step on the digits (seventh session)". From the repository root:

    python docs/scripts/small_tile_experts.py
"""
import sys

import torch
import torch.nn.functional as F

from pce_mm.models.experts import Expert

sys.path.insert(0, 'tools/analysis')
from benchmark import median_time  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)


def median(fn):
    return median_time(fn, 'cpu', warmup=1, repeats=9) * 1e3


def matmul_c_first(expert, x):
    """The product as ``Expert`` computed it up to commit 94ee4a6."""
    weight = expert.conv.weight
    n, c, q, _ = x.shape
    k = weight.shape[-1]
    p = q - k + 1
    if p == 1:
        cols = x.reshape(n, c * k * k)
    else:
        cols = x.permute(0, 2, 3, 1).unfold(1, k, 1).unfold(2, k, 1).reshape(n * p * p, -1)
    return F.linear(cols, weight.flatten(1)).view(n, p, p, -1).permute(0, 3, 1, 2)


WAYS = {'conv': lambda expert, x: expert.conv(x), 'matmul (c, ky, kx)': matmul_c_first,
        'matmul (ky, kx, c)': lambda expert, x: expert._conv_as_matmul(x)}
print('| tiles (n, q, q, c) | output | ' + ' | '.join(
    f'{w} fwd / fwd+bwd' for w in WAYS) + ' |')
print('|---|---|' + '---|' * len(WAYS))
for c, q in ((176, 4), (352, 3)):
    for n in (256, 512, 2048, 4096):
        tiles = torch.randn(n, q, q, c, requires_grad=True)
        x = tiles.permute(0, 3, 1, 2)                   # NCHW view of channels-last tiles
        expert = Expert(c, c, 3)
        want = expert.conv(x)
        cells = []
        for fn in WAYS.values():
            torch.testing.assert_close(fn(expert, x), want, atol=1e-3, rtol=1e-4)
            with torch.no_grad():
                forward = median(lambda: fn(expert, x))
            both = median(lambda: fn(expert, x).sum().backward())
            cells.append(f'{forward:.1f} / {both:.1f}')
        p = q - 2
        print(f'| ({n}, {q}, {q}, {c}) | {p}x{p} | ' + ' | '.join(cells) + ' |', flush=True)
