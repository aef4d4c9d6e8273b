"""Generate the shapes demo detection dataset (COCO format) used by the demo configs.

Example:
    python tools/make_demo_data.py --out data/demo --num-train 1000 --num-val 200

Running it again with the same arguments reuses the existing dataset; with other arguments it
stops and asks for another ``--out`` or ``--overwrite``.
"""
import argparse
import sys

from demo.shapes_coco import make_shapes_coco


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str] | None): Arguments without the program name; None reads ``sys.argv``.

    Returns:
        argparse.Namespace: ``out``, ``num_train``, ``num_val``, ``img_size`` (list of one or
        two ints), ``seed`` and ``overwrite``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo',
                        help='dataset root to create (default: data/demo)')
    parser.add_argument('--num-train', type=int, default=1000,
                        help='training images (default: 1000)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='validation images (default: 200)')
    parser.add_argument('--img-size', type=int, nargs='+', default=[256], metavar='S',
                        help='image side, or WIDTH HEIGHT (default: 256)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing dataset generated with other parameters')
    args = parser.parse_args(argv)
    if len(args.img_size) > 2:
        parser.error(f'--img-size takes one side or WIDTH HEIGHT, got {len(args.img_size)} '
                     f'values: {args.img_size}')
    return args


def main(argv: list[str] | None = None) -> None:
    """Generate (or reuse) the dataset and print its summary."""
    args = parse_args(argv)
    img_size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    try:
        summary = make_shapes_coco(args.out, num_train=args.num_train, num_val=args.num_val,
                                   img_size=img_size, seed=args.seed, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as err:
        sys.exit(f'error: {err}')
    state = 'reused existing' if summary['reused'] else 'generated'
    print(f"{state} shapes dataset at {summary['out_dir']}")
    print(f"classes: {', '.join(summary['classes'])}")
    for split in ('train', 'val'):
        info = summary[split]
        per_class = ', '.join(f'{name} {count}' for name, count in info['per_class'].items())
        print(f"{split}: {info['images']} images, {info['annotations']} annotations "
              f'({per_class})')


if __name__ == '__main__':
    main()
