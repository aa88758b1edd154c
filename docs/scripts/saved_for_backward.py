"""Where a routed training step's memory goes: the storages autograd keeps for backward
during one forward of PCENet-ARCH and of its ResNet twin (the benchmark's inputs), each
counted once, under the module that kept it first (``layerX`` = any block, ``experts.N`` =
any expert). docs/performance.md, "What the routed step keeps for backward (ninth
session)". From the repository root:

    python docs/scripts/saved_for_backward.py tiny|r18|r50
"""
import collections
import re
import sys

import torch
sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402
from pce_mm.analysis import SavedForBackward  # noqa: E402
from torch.nn.modules import module as M  # noqa: E402
torch.set_num_threads(2)
arch = sys.argv[1]
pairs = {a: (r, s, bt) for a, r, s, bt in b.PAIRS}
resnet, side, batch = pairs[arch]
for spec in (dict(type='PCENet', arch=arch, num_experts=8, top_k=2), resnet):
    phase = 2 if spec.get('type') == 'PCENet' else None          # routed
    step, model, x = b.train_step(spec, side, batch, 'cpu', phase)
    stack = []
    names = {m: n for n, m in model.named_modules()}

    def enter(module, args):
        stack.append(names.get(module, '?'))

    def leave(module, args, output):         # returns None: the output stays
        stack.pop()

    h1 = M.register_module_forward_pre_hook(enter)
    h2 = M.register_module_forward_hook(leave)
    params = frozenset(p.untyped_storage().data_ptr() for p in model.parameters())
    model.zero_grad(set_to_none=True)
    with SavedForBackward(params, label=lambda: stack[-1] if stack else 'top') as saved:
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    h1.remove()
    h2.remove()
    tot = saved.mib
    print(spec.get('type'), arch, f'saved {tot:.0f} MiB')
    agg = collections.Counter()
    for ptr, nb in saved.storages.items():
        key = re.sub(r'layer\d+\.\d+\.', 'layerX.', saved.where[ptr])
        key = re.sub(r'experts\.\d+', 'experts.N', key)
        agg[key] += nb / 2**20
    for k, v in agg.most_common(14):
        print(f'  > {v:7.1f}  {k}')
