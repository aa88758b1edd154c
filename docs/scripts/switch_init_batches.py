"""Routing NMI on the demo's 40 test images right after the switch (no routed training),
with the routers set by k-means of the hidden features of 1 training batch (what the
switch does; with the points a checkpoint of a `switch_cfg.init_batches` run carries) or of
N at the checkpoint's weights. docs/routing.md, "Sixth session" and "Eighth session". From
the repository root:

    python docs/scripts/switch_init_batches.py work_dirs/demo/pce_s0/epoch_1.pth N
"""
import sys
import numpy as np
import torch
from mmengine.runner import Runner
import pce_mm  # noqa: F401
from pce_mm.analysis import (accumulate, load_model, normalized_mutual_info as nmi,
                             patch_classes, route_batch)
from pce_mm.models import PCEBlock
from pce_mm.models.dispatch import PatchGrid

ckpt, batches = sys.argv[1], int(sys.argv[2])
size = (320, 256)
cfg, model = load_model('configs/pce_frcnn_voc.py', ckpt, options={
    'data_root': 'data/demo/VOCdevkit/', 'train_dataloader.dataset.times': 1,
    'train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale': size,
    'train_dataloader.dataset.dataset.datasets.1.pipeline.2.scale': size,
    'test_dataloader.dataset.pipeline.1.scale': size})
backbone = model.backbone
torch.manual_seed(0)
train = [model.data_preprocessor(d, False)['inputs']
         for _, d in zip(range(batches), Runner.build_dataloader(cfg.train_dataloader))]
backbone.switch_to_routing(train[0])            # the switch as training runs it: one batch
if batches > 1:                                 # then every router again from all batches
    blocks = [m for m in backbone.modules() if isinstance(m, PCEBlock)]
    hidden = {b: [] for b in blocks}
    def grab(block, args):      # phase 1 does not run the router: its input, as route() makes it
        h = block.reduce(args[0])
        grid = PatchGrid(h.shape[2], h.shape[3], block.patch_size)
        hidden[block].append(block.router.hidden(grid.pool(h), grid.centres()).flatten(0, 1))
    hooks = [b.register_forward_pre_hook(grab) for b in blocks]
    backbone.set_phase(1)
    with torch.no_grad():
        for x in train:
            backbone(x)
    for h in hooks:
        h.remove()
    g = torch.Generator().manual_seed(0)
    for block in blocks:
        block.router.init_from_hidden(torch.cat(hidden[block]), generator=g)
backbone.set_phase(2)
loader = Runner.build_dataloader(cfg.test_dataloader)
none = len(loader.dataset.metainfo['classes'])
matrices = {}
with torch.no_grad():
    for data in loader:
        _, samples, routings = route_batch(model, data)
        for r in routings:
            m = matrices.setdefault(r.stage, np.zeros((none + 1, 8), np.int64))
            accumulate(m, r, patch_classes(r, samples, none))
print(ckpt, batches, 'batches:', ' / '.join(
    f'{nmi(m):.3f} ({m.sum(0).max() / m.sum() * 8:.1f}x)' for _, m in sorted(matrices.items())))
