"""How much class the demo's features hold: per stage, the NMI between class and 8 k-means
clusters of the 40 test images' 32-pixel patches (the stage output; for PCENet also its
last block's router hidden features, and the routing the block ran), beside the same for
the patches' mean colour. docs/routing.md, "Sixth session". From the repository root:

    python docs/scripts/feature_clusters.py configs/{pce,resnet}_frcnn_voc.py CKPT [KMEANS_SEED]
"""
import sys
from types import SimpleNamespace
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, load_checkpoint
from sklearn.cluster import KMeans
import pce_mm  # noqa: F401
from pce_mm.analysis import normalized_mutual_info as nmi, patch_classes
from pce_mm.analysis.routing import _centres_px
from pce_mm.models import PCENet
from pce_mm.models.dispatch import PatchGrid
from pce_mm.models.router import balancing_bias
from pce_mm.utils import adapt_to_cpu, merge_cli_options

config, ckpt = sys.argv[1:3]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
cfg = adapt_to_cpu(merge_cli_options(Config.fromfile(config), {
    'data_root': 'data/demo/VOCdevkit/', 'test_dataloader.dataset.pipeline.1.scale': (320, 256)}))
init_default_scope(cfg.get('default_scope', 'mmdet'))
model = MODELS.build(cfg.model)
load_checkpoint(model, ckpt, map_location='cpu', logger='silent')
model.eval()
backbone, pce = model.backbone, isinstance(model.backbone, PCENet)
hidden = {}
if pce:      # the router's hidden features of each stage's last block, from its own input
    def grab(stage):
        def hook(router, args):
            hidden[stage] = router.hidden(*args)
        return hook
    for s in range(4):
        backbone.stage_blocks(s)[-1].router.register_forward_pre_hook(grab(s))
feats = {s: [] for s in range(4)}
pixels = []
hids = {s: [] for s in range(4)}
routed = {s: [] for s in range(4)}
classes = {s: [] for s in range(4)}
with torch.no_grad():
    loader = Runner.build_dataloader(cfg.test_dataloader)
    none = len(loader.dataset.metainfo['classes'])
    for data in loader:
        data = model.data_preprocessor(data, False)
        outs = backbone(data['inputs'])
        grid = PatchGrid(data['inputs'].shape[2], data['inputs'].shape[3], 32)
        pixels.append(grid.pool(data['inputs']).flatten(0, 1))
        for s, out in enumerate(outs):
            stride = data['inputs'].shape[-1] // out.shape[-1]
            grid = PatchGrid(out.shape[2], out.shape[3], 32 // stride)
            feats[s].append(grid.pool(out).flatten(0, 1))
            where = SimpleNamespace(top1=torch.zeros(out.shape[0], grid.rows, grid.cols),
                                    centres=_centres_px(grid, stride))
            classes[s].append(patch_classes(where, data['data_samples'], none=none).reshape(-1))
            if pce:
                hids[s].append(hidden[s].flatten(0, 1))
                block = backbone.stage_blocks(s)[-1]
                routed[s].append(block.last_routing.indices[..., 0].reshape(-1))

def matrix(y, labels):
    return np.bincount(y * 8 + labels, minlength=8 * (none + 1)).reshape(none + 1, 8)

def cluster_nmi(x, y, standardise=True):
    """NMI of k-means (8) of x, the busiest cluster's share x 8, and the NMI of the
    balanced nearest-centroid rule (the clusters' loads levelled by a per-cluster bias,
    fitted as the switch's router init fits it)."""
    x = torch.cat(x).float()
    if standardise:                                 # every channel at unit scale
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    km = KMeans(8, n_init=4, random_state=seed).fit(x.numpy())
    labels = km.labels_
    mu = torch.from_numpy(km.cluster_centers_).float()
    base = x @ mu.t() - mu.square().sum(-1) / 2
    base = base / base.std()
    top1 = (base + balancing_bias(base, 1, steps=400)).argmax(-1).numpy()
    busiest = lambda l: np.bincount(l, minlength=8).max() / len(l) * 8
    return (f'{nmi(matrix(y, labels)):.3f} (busiest {busiest(labels):.1f}x), '
            f'balanced {nmi(matrix(y, top1)):.3f} ({busiest(top1):.1f}x)')

for s in range(4):
    y = torch.cat(classes[s]).numpy()
    row = [f'stage {s + 1}', f'{len(y)} patches',
           f'k-means of the stage output: {cluster_nmi(feats[s], y)}']
    if pce:
        r = torch.cat(routed[s]).numpy()
        row += [f'of the router hidden: {cluster_nmi(hids[s], y, False)}',
                f'routing: {nmi(matrix(y, r)):.3f}']
    print(', '.join(row), flush=True)
print('input pixels (RGB mean of each 32-pixel patch):',
      cluster_nmi(pixels, torch.cat(classes[0]).numpy()))
