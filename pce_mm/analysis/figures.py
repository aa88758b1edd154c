"""Figures of the router's choices (matplotlib, written as PNG)."""
from typing import Sequence

import matplotlib

matplotlib.use('Agg')  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .routing import StageRouting, expand_to_input  # noqa: E402

__all__ = ['expert_colours', 'draw_router_maps', 'draw_usage_matrix', 'to_display']


def expert_colours(num_experts: int) -> ListedColormap:
    base = plt.get_cmap('tab10' if num_experts <= 10 else 'tab20')
    colours = [base(i % base.N) for i in range(num_experts)]
    return ListedColormap(colours)


def to_display(inputs: torch.Tensor, preprocessor) -> np.ndarray:
    """A network input ``(c, H, W)`` back to an ``(H, W, 3)`` uint8 picture."""
    x = inputs.detach().float().cpu()
    mean, std = getattr(preprocessor, 'mean', None), getattr(preprocessor, 'std', None)
    if mean is not None and std is not None:
        x = x * std.cpu().view(-1, 1, 1) + mean.cpu().view(-1, 1, 1)
    x = x.clamp(0, 255).byte().permute(1, 2, 0).numpy()
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def _overlay(ax, image: np.ndarray, values: np.ndarray, title: str, **imshow):
    ax.imshow(image)
    ax.imshow(values, alpha=0.55, interpolation='nearest', **imshow)
    ax.set_title(title, fontsize=9)
    ax.axis('off')


def draw_router_maps(image: np.ndarray, routing: StageRouting, position: StageRouting,
                     index: int, path: str, title: str = '') -> None:
    """Three panels: the top-1 expert of each patch, its weight in the block's output (from
    ``1 / k``, shared, to 1, alone), and the choice of position alone."""
    num_experts = routing.probs.shape[-1]
    cmap = expert_colours(num_experts)
    size = image.shape[:2]
    top1 = expand_to_input(routing.top1[index], routing.patch_pixels, size).cpu().numpy()
    confidence = expand_to_input(routing.weights[index][..., 0], routing.patch_pixels,
                                 size).cpu().numpy()
    by_position = expand_to_input(position.top1[0], position.patch_pixels, size).cpu().numpy()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    _overlay(axes[0], image, top1, f'stage {routing.stage}: top-1 expert', cmap=cmap,
             vmin=-0.5, vmax=num_experts - 0.5)
    _overlay(axes[1], image, confidence, 'weight of the top-1 expert', cmap='magma',
             vmin=1 / routing.chosen.shape[-1], vmax=1)
    _overlay(axes[2], image, by_position, 'position only (content neutral)', cmap=cmap,
             vmin=-0.5, vmax=num_experts - 0.5)
    fig.colorbar(axes[1].images[-1], ax=axes[1], fraction=0.046, pad=0.02)
    fig.legend(handles=[Patch(color=cmap(i), label=f'E{i}') for i in range(num_experts)],
               loc='lower center', ncol=min(num_experts, 16), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)


def draw_usage_matrix(matrix: np.ndarray, row_names: Sequence[str], path: str,
                      title: str) -> None:
    """Heat-map of each class's share of patches per expert (rows sum to 1)."""
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    rows, cols = matrix.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * cols, 1.0 + 0.32 * rows))
    im = ax.imshow(shares, cmap='viridis', vmin=0, vmax=1, aspect='auto')
    ax.set_xticks(range(cols), [f'E{i}' for i in range(cols)], fontsize=8)
    ax.set_yticks(range(rows), [f'{n} ({int(c)})' for n, c in zip(row_names, matrix.sum(1))],
                  fontsize=8)
    ax.set_xlabel('expert (top-1)')
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label='share of the class\'s patches')
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)
