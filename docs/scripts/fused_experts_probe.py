"""Probe of a fused routed expert stage (issue 13): one stacked weight, 3x3 neighbourhoods
gathered as rows, one product and one batch norm per expert segment, one scatter-add;
against today's sparse_dispatch and k full-map convolutions, forward + backward, one block
of each stage of a PCENet-tiny (batch 32, E=8, k=2). docs/performance.md, "Fused experts
probed (sixth session)". From the repository root:

    python docs/scripts/fused_experts_probe.py [--profile]
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F
sys.path.insert(0, 'tools/analysis')
import benchmark as b
from pce_mm.models import PCEBlock
from pce_mm.models.dispatch import PatchGrid, _cell_pixels, sparse_dispatch
torch.manual_seed(0)
model = b.build_backbone(dict(type='PCENet', arch='tiny', num_experts=8, top_k=2)).train()
model.set_phase(2)
caught = []
def hook(mod, args, out):
    h = mod.reduce(args[0]).detach()
    grid = PatchGrid(h.shape[2], h.shape[3], mod.patch_size)
    r = mod.route(h, grid)
    caught.append((mod, h, grid, r.indices.detach(), r.weights.detach()))
for m in model.modules():
    if isinstance(m, PCEBlock):
        m.register_forward_hook(hook)
with torch.no_grad():
    model(torch.randn(32, 3, 32, 32))

def fused(h, grid, ex, idx, w, W, g, beta, tiles_first):
    """One stacked weight (e, c_out, 9c): rows of 3x3 neighbourhoods gathered per
    assignment (from an unfold of the whole map, or from today's halo tiles), one product
    and one batch norm per expert segment, ReLU, weighting, one scatter-add."""
    b_, n, k = idx.shape
    c, p, halo = h.shape[1], grid.patch, ex.halo
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=W.shape[0]).tolist()
    image, cell = (order // k) // n, (order // k) % n
    out_h, out_w = grid.rows * p, grid.cols * p
    padded = F.pad(h, (halo, out_w + halo - grid.width, halo, out_h + halo - grid.height))
    cells = _cell_pixels(grid.rows, grid.cols, p, p, out_w, h.device)
    out_rows = ((image * (out_h * out_w))[:, None] + cells[cell]).reshape(-1)
    if tiles_first:        # B: today's halo tiles, one unfold over all of them
        q = p + 2 * halo
        pixels = padded.permute(0, 2, 3, 1).reshape(-1, c)
        window = _cell_pixels(grid.rows, grid.cols, p, q, out_w + 2 * halo, h.device)
        rows = (image * padded.shape[2] * padded.shape[3])[:, None] + window[cell]
        tiles = pixels.index_select(0, rows.reshape(-1)).view(-1, q, q, c).permute(0, 3, 1, 2)
        cols = F.unfold(tiles, 2 * halo + 1).transpose(1, 2).reshape(-1, c * (2 * halo + 1) ** 2)
    else:                  # A: the whole map unfolded once, each assignment's pixels gathered
        cols = F.unfold(padded, 2 * halo + 1).transpose(1, 2).reshape(-1, W.shape[-1])
        cols = cols.index_select(0, out_rows)
    ys = []
    for x_i, W_i, g_i, b_i in zip(cols.split([n_ * p * p for n_ in counts]), W.unbind(0),
                                  g.unbind(0), beta.unbind(0)):
        y = x_i @ W_i.t()
        ys.append(F.relu(F.batch_norm(y, None, None, g_i, b_i, True, 0.0, 1e-5)))
    y = torch.cat(ys).view(-1, p * p, W.shape[1])
    y = y * w.reshape(-1)[order].view(-1, 1, 1)
    out = y.new_zeros(b_ * out_h * out_w, W.shape[1]).index_add_(0, out_rows, y.reshape(-1, W.shape[1]))
    out = out.view(b_, out_h, out_w, -1).permute(0, 3, 1, 2)
    return out[:, :, :grid.height, :grid.width]

def stacked(ex):
    """The experts' conv weights ``(e, c_out, 9c)``, norm weights and biases, stacked."""
    return [torch.stack([t.detach() for t in ts]).requires_grad_() for ts in zip(
        *[(e.conv.weight.flatten(1), e.norm.weight, e.norm.bias) for e in ex])]

def med(fn):
    fn(); ts = []
    for _ in range(5):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

for mod, h, grid, idx, w in caught[::3]:          # one block of each stage
    h = h.requires_grad_(); ex, halo = mod.experts, mod.experts.halo
    W, g, beta = stacked(ex)
    with torch.no_grad():
        ref = sparse_dispatch(h, grid, ex, idx, w, halo)
        err = [float((fused(h, grid, ex, idx, w, W, g, beta, t) - ref).abs().max())
               for t in (False, True)]
    sparse = lambda: sparse_dispatch(h, grid, ex, idx, w, halo).sum().backward()
    fa = lambda: fused(h, grid, ex, idx, w, W, g, beta, False).sum().backward()
    fb = lambda: fused(h, grid, ex, idx, w, W, g, beta, True).sum().backward()
    full = lambda: sum(ex.experts[0](F.pad(h, (halo,) * 4))
                       for _ in range(idx.shape[-1])).sum().backward()
    print(tuple(h.shape), grid.patch, [round(med(f) * 1e3, 1) for f in (sparse, fa, fb, full)],
          'max |fused - sparse|', ['%.1e' % e for e in err], flush=True)

if '--profile' in sys.argv:        # where the time goes, sparse vs fused A, patch 8 and 1
    from torch.profiler import profile
    for mod, h, grid, idx, w in (caught[0], caught[-1]):
        h = h.requires_grad_(); ex = mod.experts
        W, g, beta = stacked(ex)
        for name, fn in (('sparse', lambda: sparse_dispatch(h, grid, ex, idx, w, ex.halo)),
                         ('fused A', lambda: fused(h, grid, ex, idx, w, W, g, beta, False))):
            fn().sum().backward()
            with profile() as prof:
                for _ in range(3):
                    fn().sum().backward()
            top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:6]
            print(f'patch {grid.patch}, {name}, ms a pass:', ', '.join(
                f'{e.key} {e.self_cpu_time_total / 3e3:.1f}' for e in top), flush=True)
