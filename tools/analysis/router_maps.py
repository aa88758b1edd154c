"""Draw where each expert fires: per image and PCE stage, the top-1 expert of every patch,
the router's confidence, and the choice of position alone.

    python tools/analysis/router_maps.py CONFIG CHECKPOINT --images A.jpg [B.jpg ...]
        --out-dir DIR [--block last|first] [--device cpu|cuda] [--cfg-options k=v ...]

Writes DIR/<image>_stage<s>.png and DIR/position_only.json (the position-only top-1 expert
of every patch per stage, for the first image's input size).
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate

import pce_mm  # noqa: F401  (compat fixes and registration)
from pce_mm.analysis import image_pipeline, load_model, position_only_routing, route_batch
from pce_mm.analysis.figures import draw_router_maps, to_display


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--images', nargs='+', required=True, help='image files')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--block', choices=['last', 'first'], default='last',
                        help='which PCE block of each stage to show')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. the test pipeline\'s image scale')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    missing = [p for p in args.images if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(f'--images: no such file(s): {missing}')
    cfg, model = load_model(args.config, args.checkpoint, args.device, args.cfg_options)
    pipeline = image_pipeline(cfg, model)
    os.makedirs(args.out_dir, exist_ok=True)
    positions = {}
    for path in args.images:
        data = pseudo_collate([pipeline(dict(img_path=path))])
        inputs, _, routings = route_batch(model, data, args.block)
        size = tuple(inputs.shape[2:])
        if size not in positions:
            positions[size] = {r.stage: r for r in
                               position_only_routing(model.backbone, size, args.block)}
        image = to_display(inputs[0], model.data_preprocessor)
        name = osp.splitext(osp.basename(path))[0]
        for routing in routings:
            out = osp.join(args.out_dir, f'{name}_stage{routing.stage}.png')
            draw_router_maps(image, routing, positions[size][routing.stage], 0, out,
                             f'{name}, stage {routing.stage} ({args.block} block)')
            print(f'wrote {out}')
    first = next(iter(positions.values()))
    with open(osp.join(args.out_dir, 'position_only.json'), 'w') as f:
        json.dump({f'stage{s}': r.top1[0].tolist() for s, r in first.items()}, f)


if __name__ == '__main__':
    main()
