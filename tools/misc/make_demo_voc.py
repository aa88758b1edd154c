"""Writes the embedded demo dataset: Pascal VOC layout, photographs from scikit-image.

    python tools/misc/make_demo_voc.py OUT_DIR [--train 160] [--test 40] [--val N] [--seed 0]

``--val`` (default: as many as ``--test``) images are written as VOC2012 ``val``, held out
for choosing settings.

Does nothing when OUT_DIR already holds a dataset made with the same arguments.
"""
import argparse
import json
import os.path as osp

from pce_mm.datasets.voc_demo import make_demo_voc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='the VOCdevkit folder to write')
    parser.add_argument('--train', type=int, default=160, help='trainval images (07 + 12)')
    parser.add_argument('--test', type=int, default=40, help='VOC2007 test images')
    parser.add_argument('--val', type=int, help='VOC2012 val images (default: --test)')
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    stamp = osp.join(args.out_dir, 'demo.json')
    settings = vars(args)
    if osp.exists(stamp):
        with open(stamp) as f:
            if json.load(f)['settings'] == settings:
                print(f'demo dataset already in {args.out_dir}')
                return
    counts = make_demo_voc(args.out_dir, args.train, args.test, (args.height, args.width),
                           args.seed, args.val)
    with open(stamp, 'w') as f:
        json.dump(dict(settings=settings, counts=counts), f, indent=1)
    print(f'wrote {counts} to {args.out_dir}')


if __name__ == '__main__':
    main()
