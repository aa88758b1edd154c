"""Per PCE block, how far routing moves the output from phase 1's on the same input:
``||y_routed - y_warm|| / ||y_warm||``, in eval mode, over test batches.

    python tools/analysis/switch_gap.py CONFIG CHECKPOINT [--num-batches 4] [--json OUT]
        [--cfg-options k=v ...]

A checkpoint of phase 1 (not switched yet) is switched first, on the first batch, as
training would; 0 then means a seamless switch. Images come from the config's test
dataloader through the model's data preprocessor, as in evaluation.
"""
import argparse
import json

from mmengine.config import DictAction
from mmengine.runner import Runner

import pce_mm  # noqa: F401  (compat fixes and registration)
from pce_mm.analysis import load_model
from pce_mm.analysis.switch import switch_gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--num-batches', type=int, default=4)
    parser.add_argument('--json', help='also write the per-block gaps to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg, model = load_model(args.config, args.checkpoint, options=args.cfg_options)
    loader = Runner.build_dataloader(dict(cfg.test_dataloader, num_workers=0,
                                          persistent_workers=False))
    sums, count = {}, 0
    for i, data in enumerate(loader):
        if i == args.num_batches:
            break
        inputs = model.data_preprocessor(data, False)['inputs']
        for name, gap in switch_gap(model.backbone, inputs):
            sums[name] = sums.get(name, 0.0) + gap
        count += 1
    gaps = {name: total / count for name, total in sums.items()}
    print(f'{"block":<28} ||y_routed - y_warm|| / ||y_warm||  (mean of {count} batches)')
    for name, gap in gaps.items():
        print(f'{name:<28} {gap:.2e}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(gaps, f, indent=1)


if __name__ == '__main__':
    main()
