"""Probe (twelfth session, refuted, not built): the experts' BatchNorm, ReLU and routing
weight taken for all of a block's experts at once, over their concatenated convolutions
(issue 13: "the experts' norm statistics computed per expert segment"), against today's
per-expert ``Conv -> BN -> ReLU`` and weighting. docs/performance.md, "Experts' norms per
segment (twelfth session)". From the repository root:

    python docs/scripts/segment_norm_probe.py [--repeats 9]

Checks the one-pass path against the experts' own modules in float64 (outputs, every
gradient, running statistics), then times, on the benchmark's block (8 x 96 x 28 x 28,
patch 4, k = 2, routed by the block's own router), the expert stage on tiles already
gathered (each expert's tiles with their halo), forward + backward, in turns.

Legend: ``m`` tiles, sorted by expert (a *segment* per expert), ``P`` output pixels a tile,
``c`` channels, ``e`` experts.
"""
import argparse
import copy
import sys
from typing import Sequence

import torch
from torch import nn

sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402
from pce_mm.models import PatchGrid  # noqa: E402

torch.set_num_threads(2)


def _segment_stats(y: torch.Tensor, seg: torch.Tensor, pixels: torch.Tensor):
    """``(e, c)`` mean and biased variance of each expert's segment of ``y`` ``(m, P, c)``,
    in two passes as BatchNorm takes them (``torch.var_mean`` over the tiles' pixels
    measured 20-90x slower than these sums on CPU)."""
    e, c = pixels.shape[0], y.shape[2]
    div = pixels.clamp(min=1)[:, None]
    mean = y.new_zeros(e, c).index_add_(0, seg, y.sum(1)) / div
    centred = (y - mean[seg][:, None]).square_()
    var = y.new_zeros(e, c).index_add_(0, seg, centred.sum(1)) / div
    return mean, var


class _SegmentBNReLU(torch.autograd.Function):
    """``relu(y * scale[seg] + shift[seg]) * weights``, ``scale = gamma * invstd``,
    ``shift = beta - mean * scale``. Keeps ``y`` (not the activation, which backward
    recomputes in one pass) and per-expert vectors; ``batch`` marks the experts normalised
    by their own batch statistics, whose gradient flows through them."""

    @staticmethod
    def forward(ctx, y, weights, gamma, beta, seg, mean, invstd, batch, pixels):
        scale = gamma * invstd
        shift = beta - mean * scale
        out = torch.addcmul(shift[seg][:, None], y, scale[seg][:, None]).clamp_min_(0)
        out.mul_(weights.to(y.dtype)[:, None, None])
        ctx.save_for_backward(y, weights, gamma, beta, seg, mean, invstd, batch, pixels)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        y, weights, gamma, beta, seg, mean, invstd, batch, pixels = ctx.saved_tensors
        scale = gamma * invstd
        shift = beta - mean * scale
        scale_t = scale[seg][:, None]
        act = torch.addcmul(shift[seg][:, None], y, scale_t).clamp_min_(0)  # (m, P, c)
        grad_weights = None
        if ctx.needs_input_grad[1]:
            grad_weights = (grad * act).sum((1, 2)).to(weights.dtype)
        # ReLU's gradient as torch's relu takes it (zero where the output is zero)
        grad_z = torch.ops.aten.threshold_backward(
            grad * weights.to(grad.dtype)[:, None, None], act, 0)
        del act
        x_hat = torch.addcmul((-mean * invstd)[seg][:, None], y, invstd[seg][:, None])
        e, c = gamma.shape
        grad_beta = grad_z.new_zeros(e, c).index_add_(0, seg, grad_z.sum(1))
        grad_gamma = grad_z.new_zeros(e, c).index_add_(0, seg, (grad_z * x_hat).sum(1))
        grad_y = None
        if ctx.needs_input_grad[0]:
            # With batch statistics, dy = scale (dz - (sum dz + x_hat sum dz x_hat) / N);
            # with running ones, dy = scale dz.
            keep = scale * batch.to(y.dtype)[:, None] / pixels[:, None]
            grad_y = torch.addcmul(-(grad_beta * keep)[seg][:, None], grad_z, scale_t)
            grad_y.addcmul_(x_hat, -(grad_gamma * keep)[seg][:, None])
        return (grad_y, grad_weights, grad_gamma if ctx.needs_input_grad[2] else None,
                grad_beta if ctx.needs_input_grad[3] else None) + (None, ) * 5


def segment_bn_relu(y: torch.Tensor, counts: Sequence[int], seg: torch.Tensor,
                    weights: torch.Tensor, norms: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """``(m, P, c)`` expert outputs, sorted by expert (``counts[i]`` tiles of expert
    ``i``, ``seg`` the expert of each tile) -> ``relu(norm_i(y)) * weights`` of each
    segment, each with its own ``nn.BatchNorm2d`` (in its own training mode; all of them
    affine, with running statistics, and ``momentum`` set)."""
    e, pixels_a_tile = len(norms), y.shape[1]
    training = norms[0].training
    tiles = torch.tensor(counts, device=y.device)
    pixels = (tiles * pixels_a_tile).to(y.dtype)
    running_mean = torch.stack([n.running_mean for n in norms])
    running_var = torch.stack([n.running_var for n in norms])
    if training:
        # Batch statistics where there are at least two values (what nn.BatchNorm2d
        # requires; Expert._normalize takes the running ones for a single value).
        batch = torch.tensor([n * pixels_a_tile > 1 for n in counts], device=y.device)
        with torch.no_grad():
            batch_mean, batch_var = _segment_stats(y.detach(), seg, pixels)
            mean = torch.where(batch[:, None], batch_mean, running_mean)
            var = torch.where(batch[:, None], batch_var, running_var)
            _update_running_stats(norms, counts, pixels_a_tile, batch, batch_mean,
                                  batch_var, running_mean, running_var, pixels)
    else:
        batch = torch.zeros(e, dtype=torch.bool, device=y.device)
        mean, var = running_mean, running_var
    invstd = (var + norms[0].eps).rsqrt().to(y.dtype)
    gamma = torch.stack([n.weight for n in norms]).to(y.dtype)
    beta = torch.stack([n.bias for n in norms]).to(y.dtype)
    return _SegmentBNReLU.apply(y, weights, gamma, beta, seg, mean.to(y.dtype), invstd,
                                batch, pixels.clamp(min=1))


@torch.no_grad()
def _update_running_stats(norms, counts, pixels_a_tile, batch, batch_mean, batch_var,
                          running_mean, running_var, pixels) -> None:
    """``nn.BatchNorm2d``'s update, for every expert at once: experts with batch
    statistics move their running ones by ``momentum`` (the variance unbiased); every
    expert but those normalised by running statistics from one value counts the batch
    (``Expert._normalize`` bypasses the module for those; an empty batch counts)."""
    momentum = norms[0].momentum
    unbiased = batch_var * (pixels / (pixels - 1).clamp(min=1))[:, None]
    new_mean = torch.lerp(running_mean, batch_mean.to(running_mean.dtype), momentum)
    new_var = torch.lerp(running_var, unbiased.to(running_var.dtype), momentum)
    keep = batch[:, None]
    torch._foreach_copy_([n.running_mean for n in norms],
                         list(torch.where(keep, new_mean, running_mean).unbind(0)))
    torch._foreach_copy_([n.running_var for n in norms],
                         list(torch.where(keep, new_var, running_var).unbind(0)))
    counted = [n.num_batches_tracked for n, k in zip(norms, counts) if k * pixels_a_tile != 1]
    if counted:
        torch._foreach_add_(counted, 1)


def per_expert(experts, chunks, weights, counts):
    """Today's path: each expert's modules, its weight, one concatenation."""
    return torch.cat([e(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) * w.view(-1, 1, 1, 1)
                      for e, c, w in zip(experts, chunks, weights.split(counts))])


def one_pass(experts, chunks, weights, counts, seg):
    convolved = torch.cat([e.convolve(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
                           for e, c in zip(experts, chunks)])
    return segment_bn_relu(convolved.flatten(1, 2), counts, seg, weights,
                           [e.norm for e in experts]).view_as(convolved)


def convolve(expert, x):
    """The expert's convolution alone (``Expert.forward`` before its norm)."""
    norm, act = expert.norm, expert.activate
    name = expert.norm_name
    setattr(expert, name, nn.Identity())
    expert.activate = None
    try:
        return expert(x)
    finally:
        setattr(expert, name, norm)
        expert.activate = act


def routed_tiles(num_experts, dtype=torch.float32):
    torch.manual_seed(0)
    block = b.make_block(num_experts, 'sparse', 'cpu').train().to(dtype)
    for expert in block.experts:
        expert.convolve = lambda x, e=expert: convolve(e, x)
    h = torch.randn(b.BLOCK['batch'], b.BLOCK['expert_channels'], b.BLOCK['size'],
                    b.BLOCK['size'], dtype=dtype)
    grid = PatchGrid(b.BLOCK['size'], b.BLOCK['size'], b.BLOCK['patch_size'])
    with torch.no_grad():
        routing = block.route(h, grid)
    flat = routing.indices.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_experts).tolist()
    q = grid.patch + 2
    tiles = torch.randn(flat.numel(), q, q, h.shape[1], dtype=dtype, requires_grad=True)
    weights = routing.weights.reshape(-1)[order].detach().requires_grad_()
    return block.experts, tiles, weights, counts, flat[order]


def check():
    experts, tiles, weights, counts, seg = routed_tiles(8, torch.float64)
    for training in (True, False):
        twin = copy.deepcopy(experts).train(training)
        experts.train(training)
        results = []
        for path, mods in ((one_pass, experts), (per_expert, twin)):
            tiles.grad = weights.grad = None
            mods.zero_grad(set_to_none=True)
            args = (mods, tiles.split(counts), weights, counts)
            out = path(*args, seg) if path is one_pass else path(*args)
            out.backward(torch.ones_like(out).cumsum(-1))
            results.append([out, tiles.grad, weights.grad] +
                           [p.grad for p in mods.parameters()] + list(mods.buffers()))
        err = max(float((x - y).abs().max() / y.abs().max().clamp(min=1))
                  for x, y in zip(*results))
        print(f'float64, {"training" if training else "eval"}: largest difference '
              f'{err:.1e} (relative to each tensor\'s largest value)')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeats', type=int, default=9)
    args = parser.parse_args()
    check()
    steps = {}
    for e in (4, 8, 32):
        experts, tiles, weights, counts, seg = routed_tiles(e)
        steps[f'E={e} per expert'] = lambda a=(experts, tiles, weights, counts): \
            per_expert(a[0], a[1].split(a[3]), a[2], a[3]).sum().backward()
        steps[f'E={e} one pass'] = lambda a=(experts, tiles, weights, counts, seg): \
            one_pass(a[0], a[1].split(a[3]), a[2], a[3], a[4]).sum().backward()
    times = b.interleaved_medians(steps, 'cpu', warmup=2, repeats=args.repeats)
    print(', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in times.items()))
    for path in ('per expert', 'one pass'):
        print(f'{path}: E=32 / E=4 {times[f"E=32 {path}"] / times[f"E=4 {path}"]:.2f}')


if __name__ == '__main__':
    main()
