"""Winograd convolution of the experts' tiles: a 3x3 kernel over ``q x q`` tiles without
padding, ``q = 4`` (2x2 outputs) or ``q = 6`` (4x4 outputs).

A patch of 2 or 4 pixels with its 1-pixel halo is exactly Winograd's input tile for
F(2x2, 3x3) or F(4x4, 3x3) (Lavin and Gray, 2016): each tile is transformed on its own (no
overlap between tiles to handle), the products become ``q * q`` matrix products of
``(tiles, c_in) @ (c_in, c_out)`` (2.25x and 4x fewer multiplications than the direct
convolution) and the outputs are transformed back. oneDNN convolves such small tiles at a
fraction of its full-map speed per FLOP; this runs on the BLAS instead
(docs/model.md, "Experts and their tiles").
"""
import functools
from typing import Optional, Tuple

import torch

__all__ = ['winograd_conv', 'WINOGRAD_OUTPUTS']

# The transforms (B^T, G, A^T) of Toom-Cook's construction for output tiles of 2 and 4: Lavin
# and Gray's F(2x2, 3x3), and F(4x4, 3x3) at the points 0, 1, -1, 2, -1/2 (and infinity),
# whose float32 error measured 2.1x smaller than at Lavin and Gray's 0, +-1, +-2 and 3.2x
# the direct convolution's (docs/model.md, "Experts and their tiles").
_TRANSFORMS = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[1, 3 / 2, -2, -3 / 2, 1, 0], [0, -1, -5 / 2, -1 / 2, 1, 0],
         [0, 1, 1 / 2, -5 / 2, 1, 0], [0, -1 / 2, -1, 1 / 2, 1, 0], [0, 2, -1, -2, 1, 0],
         [0, 1, 3 / 2, -2, -3 / 2, 1]],
        [[1, 0, 0], [-1 / 3, -1 / 3, -1 / 3], [1 / 3, -1 / 3, 1 / 3], [1 / 15, 2 / 15, 4 / 15],
         [-16 / 15, 8 / 15, -4 / 15], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -1 / 2, 0], [0, 1, 1, 4, 1 / 4, 0],
         [0, 1, -1, 8, -1 / 8, 1]]),
}
WINOGRAD_OUTPUTS = tuple(_TRANSFORMS)


@functools.lru_cache(maxsize=16)
def _transforms(p: int, dtype: torch.dtype,
                device: torch.device) -> Tuple[torch.Tensor, ...]:
    """``B^T (x) B^T``, ``G (x) G`` and ``A^T (x) A^T``: the transforms as one matrix each,
    acting on a tile flattened row by row (one product of ``(q * q) x (q * q)`` with all the
    tiles' channels was the fastest form measured: docs/performance.md)."""
    bt, g, at = (torch.tensor(x, dtype=dtype, device=device) for x in _TRANSFORMS[p])
    return torch.kron(bt, bt), torch.kron(g, g), torch.kron(at, at)


def _tiles_first(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(s, n, c) -> (r, n, c)``: ``m`` of shape ``(r, s)`` on each flattened tile."""
    return torch.mm(m, x.reshape(x.shape[0], -1)).view(m.shape[0], *x.shape[1:])


def _input(bt: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """``(n, q, q, c) -> (q * q, n, c)``: the tiles transformed."""
    n, q, _, c = tiles.shape
    return _tiles_first(bt, tiles.permute(1, 2, 0, 3).reshape(q * q, n, c))


def _kernel(g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(c_out, c_in, 3, 3) -> (q * q, c_in, c_out)``: the kernels transformed (``g`` is
    ``G (x) G``)."""
    c_out, c_in = weight.shape[:2]
    flat = weight.permute(2, 3, 1, 0).reshape(9, c_in * c_out)
    return torch.mm(g, flat).view(g.shape[0], c_in, c_out)


def _kernel_grad(g: torch.Tensor, grad_u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(q * q, c_in, c_out) -> (c_out, c_in, 3, 3)``: the adjoint of :func:`_kernel`, in
    the weight's memory layout (which autograd then takes as the gradient without a copy)."""
    _, c_in, c_out = grad_u.shape
    flat = torch.mm(g.t(), grad_u.reshape(g.shape[0], -1))
    return torch.empty_like(weight).copy_(flat.view(3, 3, c_in, c_out).permute(3, 2, 0, 1))


class _WinogradConv(torch.autograd.Function):
    """Keeps the tiles (the view the experts are given, which the dispatch's saved-tensor
    hooks gather again in backward instead of keeping) and the weight; backward transforms
    the tiles again rather than keeping their transform, a second copy of them."""

    @staticmethod
    def forward(ctx, tiles: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(tiles, weight)
        ctx.has_bias = bias is not None
        return _forward(tiles, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple:
        tiles, weight = ctx.saved_tensors
        n, q, _, c_in = tiles.shape
        p, c_out = q - 2, weight.shape[0]
        bt, g, at = _transforms(p, tiles.dtype, tiles.device)
        grad = grad.permute(1, 2, 0, 3).reshape(p * p, n, c_out)
        grad_m = _tiles_first(at.t(), grad)                              # (qq, n, c_out)
        grad_tiles = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_v = torch.bmm(grad_m, _kernel(g, weight).transpose(1, 2))   # (qq, n, c_in)
            grad_tiles = _tiles_first(bt.t(), grad_v).view(q, q, n, c_in).permute(2, 0, 1, 3)
        if ctx.needs_input_grad[1]:
            grad_u = torch.bmm(_input(bt, tiles).transpose(1, 2), grad_m)
            grad_weight = _kernel_grad(g, grad_u, weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 1))
        return grad_tiles, grad_weight, grad_bias


def _forward(tiles: torch.Tensor, weight: torch.Tensor,
             bias: Optional[torch.Tensor]) -> torch.Tensor:
    n, q, _, c_in = tiles.shape
    p, c_out = q - 2, weight.shape[0]
    bt, g, at = _transforms(p, tiles.dtype, tiles.device)
    prods = torch.bmm(_input(bt, tiles), _kernel(g, weight))              # (qq, n, c_out)
    out = _tiles_first(at, prods).view(p, p, n, c_out).permute(2, 0, 1, 3).contiguous()
    return out if bias is None else out + bias


def winograd_conv(tiles: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(n, q, q, c_in)`` channels-last tiles, ``(c_out, c_in, 3, 3)`` weight ->
    ``(n, q - 2, q - 2, c_out)``: ``F.conv2d`` without padding, for ``q`` in 4 and 6."""
    if (tiles.shape[1] - 2 not in WINOGRAD_OUTPUTS or tiles.shape[2] != tiles.shape[1]
            or weight.shape[2:] != (3, 3)):
        raise ValueError(f'winograd_conv takes q x q tiles with q - 2 in {WINOGRAD_OUTPUTS} '
                         f'and a 3x3 kernel, got tiles {tuple(tiles.shape)} and weight '
                         f'{tuple(weight.shape)}')
    if torch.is_grad_enabled() and (tiles.requires_grad or weight.requires_grad):
        return _WinogradConv.apply(tiles, weight, bias)
    return _forward(tiles, weight, bias)
