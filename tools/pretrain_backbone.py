"""Pretrain the demo's ResNet-18 backbone on the proxy texture classification task.

Example:
    python tools/pretrain_backbone.py --out work_dirs/demo/proxy_backbone/resnet18_textures.pth

The checkpoint holds the backbone's weights and BN running statistics under mmdet ``ResNet``
key names (``tools/demo/proxy_classification.py``): the frozen-BN demo teacher
(``configs/demo/retinanet_r18_frozen_bn_shapes.py``) starts from it, as mmdet's detectors
start from ImageNet weights. It plays ImageNet's role: the textures are other images than the
demo's shapes, so the frozen BN statistics describe them, not the detection data.
"""
import argparse
import json
import os.path as osp

import torch

from demo.proxy_classification import (PROXY_CLASSES, save_backbone_checkpoint,
                                       train_proxy_classifier)

DEFAULT_OUT = 'work_dirs/demo/proxy_backbone/resnet18_textures.pth'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (all flags have defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='backbone checkpoint to write (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=400,
                        help='optimizer steps (default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='images per step (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=4000,
                        help='training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=500,
                        help='held-out images (default: %(default)s)')
    parser.add_argument('--img-size', type=int, default=64,
                        help='image side in pixels (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    args = parser.parse_args(argv)
    for name in ('steps', 'batch_size', 'num_train', 'num_val'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got '
                         f'{getattr(args, name)}')
    if args.img_size < 32:
        parser.error(f'--img-size must be at least 32 (the backbone downsamples 32 times), '
                     f'got {args.img_size}')
    return args


def main(argv: list[str] | None = None) -> dict:
    """Train, save the backbone and a ``.json`` summary next to it; return the summary."""
    args = parse_args(argv)
    result = train_proxy_classifier(num_train=args.num_train, num_val=args.num_val,
                                    img_size=args.img_size, steps=args.steps,
                                    batch_size=args.batch_size, seed=args.seed)
    summary = dict(result['params'], classes=list(PROXY_CLASSES),
                   val_accuracy=round(result['val_accuracy'], 4),
                   train_accuracy=round(result['train_accuracy'], 4),
                   final_loss=round(sum(result['losses'][-20:]) / len(result['losses'][-20:]), 4),
                   train_s=round(result['seconds'], 1), torch_threads=torch.get_num_threads())
    save_backbone_checkpoint(result['model'], args.out, meta=summary)
    with open(osp.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(summary, f, indent=2)
    print(f"held-out accuracy {summary['val_accuracy']:.3f} ({args.num_val} images, "
          f"{len(PROXY_CLASSES)} classes), train accuracy {summary['train_accuracy']:.3f}, "
          f"{summary['train_s']:.0f} s; backbone written to {args.out}")
    return summary


if __name__ == '__main__':
    main()
