"""The patch grid, and dispatch of patches to their experts.

Legend: ``b`` batch, ``c`` channels, ``h, w`` map size, ``p`` patch side, ``q = p + 2 * halo``
patch side with its halo, ``gh, gw`` grid rows and columns, ``n = gh * gw`` patches per
image, ``e`` experts, ``k`` experts per patch, ``m = b * n * k`` routed assignments.

Sparse dispatch gathers, for each expert, the patches routed to it (with a halo of
neighbouring pixels), runs the expert once on that batch and scatters the weighted outputs
back: only the ``k`` chosen experts run on a patch. Dense dispatch runs every expert on the
whole map and masks the results; it is the reference the sparse path is tested against.
"""
import functools
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['PatchGrid', 'sparse_dispatch', 'dense_dispatch', 'DISPATCHERS']


@dataclass(frozen=True)
class PatchGrid:
    """A grid of ``patch x patch`` cells over an ``height x width`` map.

    A map whose sides are not multiples of ``patch`` is padded at the bottom and right; the
    dispatchers crop the padding away again.
    """
    height: int
    width: int
    patch: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.patch)

    @property
    def cols(self) -> int:
        return -(-self.width // self.patch)

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def _valid_extent(self, size: int, cells: int, device) -> torch.Tensor:
        start = torch.arange(cells, device=device) * self.patch
        return (size - start).clamp(max=self.patch)

    def centres(self, device=None) -> torch.Tensor:
        """``(n, 2)`` centres ``(y, x)`` in ``[0, 1]`` of each patch's part inside the map."""
        ext_y = self._valid_extent(self.height, self.rows, device)
        ext_x = self._valid_extent(self.width, self.cols, device)
        cy = (torch.arange(self.rows, device=device) * self.patch + ext_y / 2) / self.height
        cx = (torch.arange(self.cols, device=device) * self.patch + ext_x / 2) / self.width
        grid_y, grid_x = torch.meshgrid(cy, cx, indexing='ij')
        return torch.stack([grid_y, grid_x], dim=-1).reshape(-1, 2).float()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, c, h, w) -> (b, n, c)``: the mean of each patch's pixels inside the map."""
        p = self.patch
        b, c = x.shape[:2]
        pad_w, pad_h = self.cols * p - self.width, self.rows * p - self.height
        padded = F.pad(x, (0, pad_w, 0, pad_h)) if pad_w or pad_h else x
        # A sum over a view, not avg_pool2d, whose backward keeps a copy of the map.
        sums = padded.reshape(b, c, self.rows, p, self.cols, p).sum((3, 5))   # (b, c, gh, gw)
        ext_y = self._valid_extent(self.height, self.rows, x.device)
        ext_x = self._valid_extent(self.width, self.cols, x.device)
        counts = (ext_y[:, None] * ext_x[None, :]).to(x.dtype)     # (gh, gw)
        return (sums / counts).flatten(2).transpose(1, 2)

    def expand(self, per_patch: torch.Tensor) -> torch.Tensor:
        """``(b, n, e) -> (b, e, h, w)``: a per-patch value painted over its pixels."""
        b, _, e = per_patch.shape
        x = per_patch.transpose(1, 2).reshape(b, e, self.rows, self.cols)
        x = x.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)
        return x[:, :, :self.height, :self.width]


@functools.lru_cache(maxsize=64)
def _cell_pixels(rows: int, cols: int, patch: int, side: int, row_stride: int,
                 device: torch.device) -> torch.Tensor:
    """``(n, side * side)`` flat indices, in a row-major map ``row_stride`` pixels wide, of
    the ``side x side`` square starting at each cell's top-left corner (cells ``patch``
    apart)."""
    top = torch.arange(rows, device=device) * patch
    left = torch.arange(cols, device=device) * patch
    offset = torch.arange(side, device=device)
    ys = (top[:, None, None, None] + offset[None, None, :, None]) * row_stride
    xs = left[None, :, None, None] + offset[None, None, None, :]
    return (ys + xs).reshape(rows * cols, side * side)


def sparse_dispatch(x: torch.Tensor, grid: PatchGrid, experts: Sequence[nn.Module],
                    indices: torch.Tensor, weights: torch.Tensor, halo: int) -> torch.Tensor:
    """Runs each patch through its ``k`` experts only and sums them with ``weights``.

    The map is read in channels-last order, so gathering a patch with its halo is a copy of
    ``q * q`` rows of ``c`` contiguous values (and its gradient a row scatter-add); the
    experts run on channels-last tiles and their weighted outputs are added back row-wise.

    Args:
        x: ``(b, c, h, w)`` expert input.
        indices: ``(b, n, k)`` chosen experts per patch.
        weights: ``(b, n, k)`` their weights.
        halo: pixels of context each side of a patch (``kernel_size // 2``).
    Returns:
        ``(b, c_out, h, w)``.
    """
    b, n, k = indices.shape
    p, q = grid.patch, grid.patch + 2 * halo
    flat = indices.reshape(-1)                                     # (m,)
    order = torch.argsort(flat, stable=True)                       # assignments by expert
    counts = torch.bincount(flat, minlength=len(experts)).tolist()
    patch = order // k                                             # (m,) in [0, b * n)
    image, cell = patch // n, patch % n

    height, width = grid.rows * p + 2 * halo, grid.cols * p + 2 * halo
    window = _cell_pixels(grid.rows, grid.cols, p, q, width, x.device)
    rows = ((image * (height * width))[:, None] + window[cell]).reshape(-1)   # (m * q * q,)
    # Every expert runs, on an empty batch when it has no patches: that keeps all of them in
    # the autograd graph (DDP needs no find_unused_parameters) and keeps SyncBN's collective
    # calls in step across ranks. Each expert's output is weighted before the
    # concatenation: the product then keeps the expert's own output for backward (which its
    # activation keeps already), not a concatenated copy of all of them.
    # Backward gathers the tiles again instead of keeping them (see _RegatheredTiles).
    tiles = _RegatheredTiles(x, rows, grid, halo)
    with torch.autograd.graph.saved_tensors_hooks(tiles.pack, tiles.unpack):
        # Split in channels-last order, where the pieces (and, backwards, their gradients)
        # are plain memory blocks; each expert sees an NCHW view of its tiles.
        expert_outputs = [expert(chunk.permute(0, 3, 1, 2))
                          for expert, chunk in zip(experts, tiles.gather().split(counts))]
    weights = weights.reshape(-1)[order]
    outputs = torch.cat([_weighted(y.permute(0, 2, 3, 1), w)
                         for y, w in zip(expert_outputs, weights.split(counts))])
    c_out = outputs.shape[-1]                                      # (m, p, p, c_out)

    out_h, out_w = grid.rows * p, grid.cols * p
    cells = _cell_pixels(grid.rows, grid.cols, p, p, out_w, x.device)
    out_rows = (image * (out_h * out_w))[:, None] + cells[cell]    # (m, p * p)
    combined = add_rows(outputs.reshape(-1, c_out), out_rows.reshape(-1), b * out_h * out_w)
    combined = combined.view(b, out_h, out_w, c_out).permute(0, 3, 1, 2)
    return combined[:, :, :grid.height, :grid.width]


def _pixels(x: torch.Tensor, grid: PatchGrid, halo: int) -> torch.Tensor:
    """``(b * height * width, c)``: the map padded by ``halo`` (and up to whole patches),
    one row per pixel. Zeros around the map are what a full-map convolution with
    ``padding=halo`` sees, so an expert without padding on a patch with its halo gives that
    convolution's output."""
    height, width = grid.rows * grid.patch + 2 * halo, grid.cols * grid.patch + 2 * halo
    padded = F.pad(x, (halo, width - halo - grid.width, halo, height - halo - grid.height))
    return padded.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


class _RegatheredTiles:
    """The patches' tiles with their halo, ``(m, q, q, c)``, gathered from the map by
    ``rows``, and saved-tensor hooks under which what the experts keep of them for backward
    (their input, or views of it) is kept as a note of the view and gathered again when
    backward needs it. Kept, the tiles would be the map ``k (q / p)^2`` times over (3x at
    patch 8 and ``k = 2``, 18x at patch 1); the map is kept by the block's reduce already.
    Tensors derived from the tiles by a copy (a cast, a reordering) are kept as they are;
    every other saved tensor goes to the hooks that were active around the dispatch
    (``with_cp``'s checkpoint, a memory count), as if these hooks were not there."""

    def __init__(self, x: torch.Tensor, rows: torch.Tensor, grid: PatchGrid, halo: int):
        self.x, self.rows, self.grid, self.halo = x, rows, grid, halo
        self.version = x._version
        self.storage = None
        self.regathered = None
        # Saved-tensor hooks nest by replacement: the innermost pair sees every tensor.
        # torch has no public getter of the enclosing pair; without this private one the
        # enclosing hooks would not see the experts' other saved tensors (with_cp would
        # keep them, a memory count would miss them).
        top = getattr(torch._C._autograd, '_top_saved_tensors_default_hooks', None)
        self.outer = top(False) if top is not None else None

    def gather(self) -> torch.Tensor:
        """The tiles for the forward pass; what the experts keep of them is noted."""
        tiles = self._tiles()
        self.storage = tiles.untyped_storage().data_ptr()
        return tiles

    def _tiles(self) -> torch.Tensor:
        q = self.grid.patch + 2 * self.halo
        tiles = _pixels(self.x, self.grid, self.halo).index_select(0, self.rows)
        return tiles.view(-1, q, q, self.x.shape[1])

    def pack(self, tensor: torch.Tensor):
        if tensor.untyped_storage().data_ptr() == self.storage:
            if not tensor.numel():      # an expert without patches: its view keeps them all
                return torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype,
                                           device=tensor.device)
            return self, tensor.shape, tensor.stride(), tensor.storage_offset()
        return tensor if self.outer is None else (None, self.outer[0](tensor))

    def unpack(self, packed):
        if not isinstance(packed, tuple):
            return packed
        if packed[0] is None:
            return self.outer[1](packed[1])
        _, shape, stride, offset = packed
        if self.x._version != self.version:
            raise RuntimeError('the expert input map was modified in place after the '
                               'dispatch; its tiles cannot be gathered again for backward')
        if self.regathered is None:             # once for all the experts of the block
            with torch.no_grad():
                self.regathered = self._tiles()
        return self.regathered.as_strided(shape, stride, offset)


def _weighted(y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(n, p, p, c)`` outputs times their ``(n,)`` weights."""
    return y * weights.view(-1, 1, 1, 1).to(y.dtype)


class _AddRows(torch.autograd.Function):
    """``out[index[i]] += source[i]`` into ``rows`` zero rows. ``Tensor.index_add_`` keeps
    ``source`` for its backward, which needs only its shape: ``k`` times the block's output
    map, saved for nothing. This keeps only ``index``."""

    @staticmethod
    def forward(ctx, source: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
        ctx.save_for_backward(index)
        return source.new_zeros(rows, source.shape[1]).index_add_(0, index, source)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple:
        index, = ctx.saved_tensors
        return grad.index_select(0, index), None, None


def add_rows(source: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
    """``(rows, c)`` zeros with each row ``source[i]`` added at ``index[i]``."""
    if torch.is_grad_enabled() and source.requires_grad and not torch.jit.is_tracing():
        return _AddRows.apply(source, index, rows)
    return source.new_zeros(rows, source.shape[1]).index_add_(0, index, source)


def dense_dispatch(x: torch.Tensor, grid: PatchGrid, experts: Sequence[nn.Module],
                   indices: torch.Tensor, weights: torch.Tensor, halo: int) -> torch.Tensor:
    """Reference: every expert on the whole map, masked by its routing weight per patch.

    Costs ``e / k`` times the sparse path; in eval mode both give the same output (in
    training, BatchNorm statistics differ: here each expert normalises over the whole map).
    """
    dense = weights.new_zeros(indices.shape[:2] + (len(experts), ))
    dense.scatter_(-1, indices, weights)                           # (b, n, e)
    masks = grid.expand(dense)                                     # (b, e, h, w)
    padded = F.pad(x, (halo, ) * 4)
    out = 0
    for i, expert in enumerate(experts):
        out = out + masks[:, i:i + 1].to(x.dtype) * expert(padded)
    return out


DISPATCHERS = {'sparse': sparse_dispatch, 'dense': dense_dispatch}
