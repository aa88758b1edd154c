"""The PCE router: a shared MLP that picks, per patch, ``k`` of ``e`` experts.

Legend: ``b`` batch, ``n`` patches per image, ``m`` patches of a batch (``b * n``), ``c``
content channels, ``f`` position features, ``d`` hidden channels, ``e`` experts, ``k``
experts kept per patch.
"""
import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.model import BaseModule
from torch import nn

from .position import fourier_features

__all__ = ['Routing', 'PatchRouter', 'kmeans', 'balancing_bias']

WEIGHTINGS = ('renorm', 'softmax')
BIAS_UPDATES = ('sign', 'proportional')
LOGIT_TYPES = ('linear', 'cosine')
# The cosine router's scale until a data init sets it: cosines of random directions are
# about +-1/sqrt(d), so routing starts close to uniform, as the linear router's does.
COSINE_SCALE = 1.0


class Routing(NamedTuple):
    """What the router decided for every patch of a batch."""
    logits: torch.Tensor   # (b, n, e)
    probs: torch.Tensor    # (b, n, e) softmax over all experts
    weights: torch.Tensor  # (b, n, k) weights of the chosen experts
    indices: torch.Tensor  # (b, n, k) chosen experts


def kmeans(points: torch.Tensor, clusters: int, iters: int = 25,
           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(m, d)`` points -> ``(clusters, d)`` centroids: Lloyd's algorithm from a k-means++
    seeding. An empty cluster is re-seeded at the point farthest from its centroid."""
    m = points.shape[0]
    if m < clusters:
        raise ValueError(f'k-means of {m} points into {clusters} clusters: the router init '
                         'needs at least num_experts patches in its batch')
    first = torch.randint(m, (1, ), generator=generator, device=points.device)
    centroids = points[first]
    for _ in range(1, clusters):
        dist = torch.cdist(points, centroids).min(1).values.square()
        pick = torch.multinomial(dist + 1e-12, 1, generator=generator)
        centroids = torch.cat([centroids, points[pick]])
    for _ in range(iters):
        dist = torch.cdist(points, centroids)                       # (m, clusters)
        assign = dist.argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=clusters)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            far = dist.min(1).values.topk(int(empty.sum())).indices
            centroids[empty] = points[far]
    return centroids


def balancing_bias(scores: torch.Tensor, k: int, steps: int = 200) -> torch.Tensor:
    """``(m, e)`` scores of unit scale -> ``(e,)`` bias with which every column gets its
    share of the rows' top-``k`` choices: decaying sign steps, as loss-free balancing
    takes them."""
    e = scores.shape[-1]
    beta = torch.zeros(e, device=scores.device)
    for i in range(steps):
        load = torch.bincount((scores + beta).topk(k, -1).indices.reshape(-1),
                              minlength=e).float()
        beta += 0.5 * (load.mean() - load).sign() / (1 + i / 10)
    return beta


class PatchRouter(BaseModule):
    """Routes each patch by its content and its position.

    The content descriptor is the patch's mean feature (layer-normalised); the position is
    the Fourier code of the patch centre in ``[0, 1]`` image coordinates. One MLP, shared by
    all patches, maps both to logits over the experts; softmax, top-``k``.

    Args:
        in_channels: channels of the content descriptor.
        num_experts: ``e``.
        top_k: experts kept per patch, ``1 <= k <= e``.
        num_freqs: Fourier frequencies per coordinate.
        hidden_channels: width of the MLP's hidden layer.
        position: whether the router reads the patch's position; ``False`` routes by
            content alone (the ablation of position).
        weighting: ``'renorm'``: the kept probabilities renormalised to sum to 1 (any
            routing then reproduces identical experts exactly); ``'softmax'``: the kept
            probabilities as they are (V-MoE, OLMoE), which gives the router a gradient
            through every kept weight, also between identical experts.
        noise_std: in training, Gaussian noise of this std is added to the logits before
            the softmax (V-MoE's noisy top-k: ``1 / e`` there; Switch's jitter is the
            multiplicative cousin). 0 turns it off.
        bias_rate: loss-free balancing (DeepSeek-V3, Wang et al. 2024): a per-expert bias,
            added to the logits for the choice of experts only (never to the weights),
            moves by this step after every training batch towards the under-loaded
            experts. 0 turns it off. The default, 1, is sized for the logits of a k-means
            initialised router (a few units at the switch, tens after training: it kept
            every stage of the demo near balance where 0.1 could not follow;
            docs/training.md, "Loss-free balancing").
        bias_update: the balancing step: ``'proportional'`` (default), ``rate * (mean load -
            load_i) / mean load``, which shrinks as the loads settle; ``'sign'``, ``rate *
            sign(mean load - load_i)`` (DeepSeek-V3's), which keeps moving by ``rate`` at
            balance, and where the last step leaves the bias decides evaluation's loads
            (on the demo's test images: 2.9x the uniform share in one stage against at most
            2.0x; docs/training.md, "Loss-free balancing").
        logit_type: ``'linear'``: the MLP's last layer, ``<h, w_i> + b_i``; ``'cosine'``:
            ``s * cos(h, w_i) + b_i`` with a fixed scale ``s`` and a fixed ``b`` (X-MoE,
            Chi et al. 2022), so no logit grows beyond ``s + |b_i|`` in training and no
            expert gains a lead over all patches through its bias. ``s`` (a buffer) and
            ``b`` (a parameter that does not train) are ``COSINE_SCALE`` and 0 until
            :meth:`init_from_data` sets them (meant for the k-means init: without it the
            router stays soft).
    """

    def __init__(self,
                 in_channels: int,
                 num_experts: int,
                 top_k: int,
                 num_freqs: int = 6,
                 hidden_channels: int = 64,
                 position: bool = True,
                 weighting: str = 'renorm',
                 noise_std: float = 0.0,
                 bias_rate: float = 1.0,
                 bias_update: str = 'proportional',
                 logit_type: str = 'linear',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k must be in [1, num_experts={num_experts}], got {top_k}')
        if weighting not in WEIGHTINGS:
            raise ValueError(f'router weighting must be one of {WEIGHTINGS}, got {weighting!r}')
        if bias_update not in BIAS_UPDATES:
            raise ValueError(f'router bias_update must be one of {BIAS_UPDATES}, got '
                             f'{bias_update!r}')
        if logit_type not in LOGIT_TYPES:
            raise ValueError(f'router logit_type must be one of {LOGIT_TYPES}, got '
                             f'{logit_type!r}')
        if noise_std < 0 or bias_rate < 0:
            raise ValueError(f'router noise_std and bias_rate must be >= 0, got {noise_std} '
                             f'and {bias_rate}')
        self.num_experts = num_experts
        self.top_k = top_k
        self.num_freqs = num_freqs
        self.position = position
        self.weighting = weighting
        self.noise_std = noise_std
        self.bias_rate = bias_rate
        self.bias_update = bias_update
        self.logit_type = logit_type
        self.content_norm = nn.LayerNorm(in_channels)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels + 4 * num_freqs * position, hidden_channels), nn.GELU(),
            nn.Linear(hidden_channels, num_experts))
        # The loss-free balancing bias: a buffer, so checkpoints and DDP's buffer broadcast
        # carry it, and no optimizer touches it.
        self.register_buffer('selection_bias', torch.zeros(num_experts))
        # Small logits at the start: routing begins close to uniform, so every expert gets
        # patches (and gradient) before the router has learnt anything.
        nn.init.normal_(self.mlp[-1].weight, std=0.01)
        nn.init.zeros_(self.mlp[-1].bias)
        if logit_type == 'cosine':
            self.mlp[-1].bias.requires_grad_(False)
        if logit_type == 'cosine':
            # Fixed, and in the state dict: a checkpoint keeps the scale its init chose.
            self.register_buffer('cosine_scale', torch.tensor(COSINE_SCALE))

    def position_features(self, centres: torch.Tensor) -> torch.Tensor:
        """``(n, 2)`` patch centres in ``[0, 1]`` -> ``(n, f)``."""
        return fourier_features(centres, self.num_freqs)

    def hidden(self, content: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """``(b, n, c)`` content and ``(n, 2)`` centres -> ``(b, n, d)`` hidden features."""
        features = self.content_norm(content)
        if self.position:
            pos = self.position_features(centres).to(content.dtype)
            pos = pos.expand(content.shape[0], -1, -1)             # (b, n, f)
            features = torch.cat([features, pos], dim=-1)
        return self.mlp[:-1](features)

    def logits(self, content: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """``(b, n, c)`` content and ``(n, 2)`` centres -> ``(b, n, e)`` logits."""
        return self.project(self.hidden(content, centres))

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., d)`` hidden features -> ``(..., e)`` logits (see ``logit_type``)."""
        last = self.mlp[-1]
        if self.logit_type == 'linear':
            return last(hidden)
        cosine = F.linear(F.normalize(hidden, dim=-1), F.normalize(last.weight, dim=-1))
        return self.cosine_scale * cosine + last.bias

    def forward(self, content: torch.Tensor, centres: torch.Tensor) -> Routing:
        logits = self.logits(content, centres)
        # Softmax in float32: under autocast, half-precision probabilities round small
        # experts' shares to zero and make the balance losses noisy.
        scores = logits.float()
        if self.training and self.noise_std:
            scores = scores + torch.randn_like(scores) * self.noise_std
        probs = scores.softmax(dim=-1)
        indices = (scores + self.selection_bias).topk(self.top_k, dim=-1).indices  # (b, n, k)
        if self.weighting == 'renorm':
            # p_a / sum_k p_k as a softmax of the kept logits: the same value, but finite
            # when the selection bias picks experts whose probabilities underflow to 0
            # (0 / 0 was NaN, seen with bias_rate=1 on the demo).
            weights = scores.gather(-1, indices).softmax(-1)
        else:
            weights = probs.gather(-1, indices)
        if self.training and self.bias_rate and torch.is_grad_enabled():
            self.update_bias(indices)
        return Routing(logits, probs, weights, indices)

    @torch.no_grad()
    def update_bias(self, indices: torch.Tensor) -> None:
        """One loss-free balancing step (see ``bias_update``) on the load of the global
        batch: every process takes the same step (one all-reduce of ``e`` counts in
        distributed training)."""
        load = torch.bincount(indices.reshape(-1), minlength=self.num_experts).float()
        all_reduce(load)                        # a no-op outside distributed training
        error = load.mean() - load
        step = error.sign() if self.bias_update == 'sign' else error / load.mean()
        self.selection_bias += self.bias_rate * step

    @torch.no_grad()
    def init_from_data(self, content: torch.Tensor, centres: torch.Tensor,
                       target_entropy: float = 0.5, max_points: int = 8192,
                       generator: Optional[torch.Generator] = None) -> dict:
        """Sets the last layer so that routing starts as a soft nearest-centroid rule over
        k-means clusters of the hidden features of ``content`` (``(b, n, c)``; a seeded
        random ``max_points`` of its patches when it has more), balanced and confident
        (cluster-aware upcycling; X-MoE's and centroid routers' idea).

        ``logit_i = s * (<h, mu_i> - |mu_i|^2 / 2) + beta_i`` ranks experts by the distance
        of ``h`` to centroid ``mu_i`` (``logit_type='cosine'``: ``s * cos(h, mu_i) +
        beta_i``, ``mu`` from k-means of the normalised ``h``). ``beta`` is fitted (sign
        steps, as loss-free balancing does) until every expert gets its share of the
        top-``k`` choices on these patches; ``s`` is bisected until the mean routing
        entropy is ``target_entropy`` times ``ln e``. Returns the fit's statistics.
        """
        # float32 under autocast too: k-means and the bisection run in float32.
        h = self.hidden(content.float(), centres).flatten(0, 1).float()     # (m, d)
        if h.shape[0] > max_points:
            # Its own generator: the same points whatever the global random state.
            pick = torch.randperm(h.shape[0], generator=torch.Generator().manual_seed(0))
            h = h[pick[:max_points].to(h.device)]
        e, k = self.num_experts, self.top_k
        if self.logit_type == 'cosine':
            h = F.normalize(h, dim=-1)
            mu = F.normalize(kmeans(h, e, generator=generator), dim=-1)
            raw = h @ mu.t()                                        # (m, e) cosines
        else:
            mu = kmeans(h, e, generator=generator)                  # (e, d)
            raw = h @ mu.t() - mu.square().sum(-1) / 2              # (m, e)
        unit = raw.std().clamp_min(1e-6)
        base = raw / unit
        beta = balancing_bias(base, k)

        def entropy(s: float) -> float:
            p = (s * (base + beta)).softmax(-1)
            return float(-(p * p.clamp_min(1e-9).log()).sum(-1).mean()) / math.log(e)

        low, high = 0.0, 1.0
        while entropy(high) > target_entropy and high < 1e4:
            low, high = high, high * 2
        for _ in range(30):
            mid = (low + high) / 2
            low, high = (mid, high) if entropy(mid) > target_entropy else (low, mid)
        scale = high / unit
        last = self.mlp[-1]
        if self.logit_type == 'cosine':
            self.cosine_scale.fill_(scale)
            last.weight.copy_(mu)
            last.bias.copy_(high * beta)
        else:
            last.weight.copy_(scale * mu)
            last.bias.copy_(-scale * mu.square().sum(-1) / 2 + high * beta)
        self.selection_bias.zero_()
        load = torch.bincount(self.project(h).topk(k, -1).indices.reshape(-1),
                              minlength=e).float()
        return dict(entropy=entropy(high), busiest=float(load.max() / load.mean()))
