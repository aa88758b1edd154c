"""Three small measurements of the routed step (docs/performance.md, "The ceiling of the
routed step (twelfth session)"), each PCE against its ResNet twin in turns, medians of 5,
from the repository root:

    python docs/scripts/step_details.py faults   # page faults and time a step, tiny
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295 \\
        python docs/scripts/step_details.py faults   # glibc keeping freed memory
    python docs/scripts/step_details.py finite   # tiny with and without check_finite
    python docs/scripts/step_details.py eval PCE_CKPT RESNET_CKPT   # digits forward, eval

``eval`` takes checkpoints of ``configs/pce_digits.py`` and ``configs/resnet_digits.py``
(the eleventh session's ``work_dirs/digits11/{pce,resnet}_s0/epoch_8.pth``) and times one
forward of 128 random 28 px images, eval mode, no grad.
"""
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402

torch.set_num_threads(2)


def faults() -> None:
    arch, twin, side, batch = b.PAIRS[0]                       # tiny and ResNet_CIFAR-18
    resnet = b.train_step(twin, side, batch, 'cpu')[0]
    pce = b.train_step(b.pce_spec(arch), side, batch, 'cpu', phase=2)[0]
    times, counts = {'pce': [], 'resnet': []}, {'pce': [], 'resnet': []}
    for _ in range(2):
        pce(), resnet()
    for _ in range(5):
        for name, step in (('pce', pce), ('resnet', resnet)):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
            counts[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    for name in times:
        print(f'{name}: {statistics.median(times[name]):.3f} s a step, '
              f'{statistics.median(counts[name]):.0f} minor page faults a step')


def finite() -> None:
    steps = {f'check_finite={on}': b.train_step(dict(b.pce_spec('tiny'), check_finite=on),
                                                32, 32, 'cpu', phase=2)[0]
             for on in (True, False)}
    times = b.interleaved_medians(steps, 'cpu', warmup=1, repeats=7)
    print(', '.join(f'{name}: {t:.3f} s' for name, t in times.items()))


def evaluate(pce_ckpt: str, resnet_ckpt: str) -> None:
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from pce_mm.checkpoint import load_local

    def load(config: str, ckpt: str):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(Config.fromfile(config).model)
        state = load_local(ckpt, map_location='cpu')['state_dict']
        model.load_state_dict(state)
        model.eval()
        return model

    models = dict(pce=load('configs/pce_digits.py', pce_ckpt),
                  resnet=load('configs/resnet_digits.py', resnet_ckpt))
    x = torch.rand(128, 1, 28, 28)

    def forward(model):
        def run():
            with torch.no_grad():
                model(x, mode='tensor')
        return run

    times = b.interleaved_medians({k: forward(m) for k, m in models.items()}, 'cpu',
                                  warmup=2, repeats=5)
    print(', '.join(f'{name}: {t:.3f} s' for name, t in times.items()))


if __name__ == '__main__':
    {'faults': faults, 'finite': finite, 'eval': evaluate}[sys.argv[1]](*sys.argv[2:])
