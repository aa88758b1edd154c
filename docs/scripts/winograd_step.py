"""Training steps of each PCENet preset with the experts' 4x4 and 6x6 tiles convolved by
Winograd's algorithm (``Expert.winograd``, the default) and by oneDNN (the code
before it), beside the ResNet twin, all timed in turns in one process (the benchmark's
inputs, batches and ``interleaved_medians``). Prints images/s and the PCE / ResNet ratios.
docs/performance.md, "Winograd tiles (eleventh session)". From the repository root:

    python docs/scripts/winograd_step.py [--repeats 5] [--arch tiny r18 r50]
"""
import sys

import torch

sys.path.insert(0, 'tools/analysis')
import benchmark as b  # noqa: E402
from pce_mm.models.experts import Expert  # noqa: E402

torch.set_num_threads(2)


def with_winograd(step, on: bool):
    def run():
        Expert.winograd = on
        try:
            step()
        finally:
            Expert.winograd = True
    return run


args, pairs = b.script_pairs()
for arch, resnet, side, batch in pairs:
    pce, _, _ = b.train_step(b.pce_spec(arch), side, batch, 'cpu', phase=2)
    twin, _, _ = b.train_step(resnet, side, batch, 'cpu')
    times = b.interleaved_medians(
        dict(resnet=twin, winograd=with_winograd(pce, True), onednn=with_winograd(pce, False)),
        'cpu', warmup=1, repeats=args.repeats)
    rate = {name: batch / t for name, t in times.items()}
    print(f'{arch}: images/s ResNet {rate["resnet"]:.1f}, PCE Winograd {rate["winograd"]:.1f} '
          f'({rate["winograd"] / rate["resnet"]:.2f}), PCE oneDNN {rate["onednn"]:.1f} '
          f'({rate["onednn"] / rate["resnet"]:.2f}); Winograd / oneDNN '
          f'{rate["winograd"] / rate["onednn"]:.2f}x', flush=True)
