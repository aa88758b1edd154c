"""The E experts of one block as one grouped convolution (``groups = E``, every expert's
batch padded to the same number of tiles) against E separate convolutions and against
``k`` full-map convolutions of the same FLOPs; each ``Conv -> BN -> ReLU``, forward +
backward, ms, medians of 7 taken in turns. ``tiny``'s stages at batch 32, E = 8, k = 2,
loads balanced (the padding's cost left out: the most favourable case for grouping).
docs/performance.md, "Winograd tiles (eleventh session)". From the repository root:

    python docs/scripts/grouped_experts.py
"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, 'tools/analysis')
from benchmark import interleaved_medians  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
E, CL = 8, torch.channels_last


def conv_bn_relu(x, w, **kw):
    return F.relu(F.batch_norm(F.conv2d(x, w, **kw), None, None, training=True))


print('| block input (b, c, h, w), patch | tiles per expert | E separate | one grouped, '
      'channels-last | one grouped, NCHW | k = 2 full-map |')
print('|---|---|---|---|---|---|')
for b, c, s, p in ((32, 48, 32, 8), (32, 88, 16, 4), (32, 176, 8, 2)):
    n, q = b * (s // p)**2 * 2 // E, p + 2
    weights = [torch.randn(c, c, 3, 3, requires_grad=True) for _ in range(E)]
    tiles = [torch.randn(n, c, q, q).to(memory_format=CL).requires_grad_() for _ in range(E)]
    grouped_w = torch.randn(E * c, c, 3, 3, requires_grad=True)
    grouped_cl = torch.randn(n, E * c, q, q).to(memory_format=CL).requires_grad_()
    grouped_nchw = torch.randn(n, E * c, q, q, requires_grad=True)
    full = torch.randn(b, c, s, s).to(memory_format=CL).requires_grad_()
    t = interleaved_medians(dict(
        separate=lambda: sum(conv_bn_relu(x, w).sum() for x, w in zip(tiles, weights))
        .backward(),
        grouped_cl=lambda: conv_bn_relu(grouped_cl, grouped_w, groups=E).sum().backward(),
        grouped_nchw=lambda: conv_bn_relu(grouped_nchw, grouped_w, groups=E).sum()
        .backward(),
        full=lambda: sum(conv_bn_relu(full, weights[i], padding=1).sum() for i in range(2))
        .backward()), 'cpu', warmup=2, repeats=7)
    print(f'| {b}, {c}, {s}, {s}, {p} | {n} | ' +
          ' | '.join(f'{v * 1e3:.1f}' for v in t.values()) + ' |')
