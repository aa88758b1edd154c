"""``torch.compile`` (inductor, default settings) of a routed PCENet-``tiny`` training step
(the benchmark's input: batch 32, 32 px) or of its ResNet twin: the first compiled step's
time, three more, then eager against compiled in turns (s, medians of 5).
docs/performance.md, "Winograd tiles (eleventh session)". From the repository root (minutes):

    python docs/scripts/compile_step.py pce|resnet
"""
import sys
import time

import torch

sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402

torch.set_num_threads(2)
which = sys.argv[1]
spec = b.pce_spec('tiny') if which == 'pce' else dict(type='ResNet_CIFAR', depth=18)
torch.manual_seed(0)
model = b.build_backbone(spec)
model.train()                       # mmpretrain's ResNet.train() returns None
if which == 'pce':
    model.set_phase(2)
x = torch.randn(32, 3, 32, 32)
opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
compiled = torch.compile(model)


def step(m):
    opt.zero_grad(set_to_none=True)
    sum(o.float().mean() for o in m(x)).backward()
    opt.step()


for i in range(4):
    start = time.perf_counter()
    step(compiled)
    print(f'compiled step {i}: {time.perf_counter() - start:.2f} s', flush=True)
t = b.interleaved_medians(dict(eager=lambda: step(model), compiled=lambda: step(compiled)),
                          'cpu', warmup=1, repeats=5)
print(which, {k: round(v, 3) for k, v in t.items()})
