"""Writes scikit-learn's digits as an MNIST dataset (idx files), for configs/*_mnist.py.

    python tools/misc/make_digits_mnist.py OUT_DIR [--test-fraction 0.25] [--seed 0]
"""
import argparse

from pce_mm.datasets.digits import make_digits_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='the folder to write the four idx files to')
    parser.add_argument('--test-fraction', type=float, default=0.25)
    parser.add_argument('--seed', type=int, default=0, help='seed of the train/test split')
    args = parser.parse_args()
    counts = make_digits_mnist(args.out_dir, args.test_fraction, seed=args.seed)
    print(f'wrote {counts} digits to {args.out_dir}')


if __name__ == '__main__':
    main()
