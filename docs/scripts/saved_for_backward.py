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
import pce_mm  # noqa: E402,F401
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
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params and s.data_ptr() not in saved:
            where = stack[-1] if stack else 'top'
            saved[s.data_ptr()] = (s.nbytes(), where, tuple(t.shape))
        return t
    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    h1.remove()
    h2.remove()
    tot = sum(v[0] for v in saved.values()) / 2**20
    print(spec.get('type'), arch, f'saved {tot:.0f} MiB')
    agg = collections.Counter()
    for nb, where, shape in saved.values():
        key = re.sub(r'layer\d+\.\d+\.', 'layerX.', where)
        key = re.sub(r'experts\.\d+', 'experts.N', key)
        agg[key] += nb / 2**20
    for k, v in agg.most_common(14):
        print(f'  > {v:7.1f}  {k}')
