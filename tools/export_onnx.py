"""Export a detector to ONNX: ``python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx``.

CONFIG and CHECKPOINT are what ``tools/export_student.py`` writes (``student_config.py`` and
``student.pth``), or a distillation config and a checkpoint of its training run (the student is
exported). The graph takes a resized image and gives final detections (decoding and NMS are in
it) and the head's raw outputs; ``mmdfkd/deploy/onnx_export.py`` says what it holds and why, and
``mmdfkd/deploy/onnx_runtime.py`` runs it without torch or mmdet.

Options: ``--input-size H W`` (default: the test pipeline's resize scale), ``--dynamic`` (any
H and W), ``--opset N`` (default 18, the least with an antialiased ONNX Resize), ``--atol``.
The file is checked with ``onnx.checker``, then run with onnxruntime on a random image at the
input size (and, with ``--dynamic``, at a second size) against PyTorch: the largest absolute
difference of the raw head outputs is printed, and the export fails (and writes no file) if it
exceeds ``--atol``, onnxruntime cannot run the graph, or the two make a different number of
detections.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

import mmdfkd  # noqa: F401  (registers modules and the checked checkpoint loader)
from mmdfkd.deploy import (compare_with_onnxruntime, default_input_size, export_onnx,
                           load_detector)
from mmdfkd.deploy.onnx_export import DEFAULT_OPSET
from mmdfkd.utils import CheckpointFileError

# onnxruntime and PyTorch differ by a few 1e-6 on the demo student's raw outputs (logits and
# box deltas of order 1-10).
DEFAULT_ATOL = 1e-3
# What onnxruntime raises when a graph cannot run on an input (e.g. a reshape to sizes frozen at
# another input size); they derive from Exception only.
ONNXRUNTIME_ERRORS = (Fail, InvalidArgument, RuntimeException)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a detector to ONNX')
    parser.add_argument('config', help='student_config.py of tools/export_student.py, or the '
                        'distillation config of the checkpoint')
    parser.add_argument('checkpoint', help='student.pth, or a distillation checkpoint')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the test pipeline's resize scale)")
    parser.add_argument('--dynamic', action='store_true', help='let height and width vary')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset, 18 or later (default {DEFAULT_OPSET})')
    parser.add_argument('--atol', type=float, default=DEFAULT_ATOL,
                        help='largest accepted absolute difference of the raw head outputs '
                        f'between onnxruntime and PyTorch (default {DEFAULT_ATOL})')
    return parser.parse_args(argv)


def check_sizes(input_size: Sequence[int], dynamic: bool, divisor: int) -> List[tuple]:
    """The sizes the export is checked at: the input size, and for a dynamic graph also one
    that differs from it (and from the size it was traced at) in both height and width."""
    sizes = [tuple(input_size)]
    if dynamic:
        sizes.append((input_size[0] + 3 * divisor, max(divisor, input_size[1] - divisor)))
    return sizes


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if not args.out.endswith('.onnx'):
        sys.exit(f'--out {args.out}: the output file must end in .onnx.')
    # Written under a temporary name, renamed once checked: a file under the final name is
    # always one that reproduces PyTorch.
    unchecked = args.out[:-len('.onnx')] + '.unchecked.onnx'
    try:
        model, cfg = load_detector(args.config, args.checkpoint)
        input_size = args.input_size or default_input_size(cfg)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        wrapper = export_onnx(model, cfg, unchecked, input_size, args.dynamic, args.opset)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        sys.exit(str(exc))
    except CheckpointFileError as exc:
        sys.exit(f'Checkpoint {exc}. Give a complete .pth file (tools/export_student.py\'s '
                 'student.pth, or a checkpoint written by tools/train.py).')
    print(f'exported ({"dynamic" if args.dynamic else "fixed"} input size), onnx.checker: ok')
    failed = False
    for size in check_sizes(input_size, args.dynamic, wrapper.pad_size_divisor):
        try:
            result = compare_with_onnxruntime(wrapper, unchecked, size)
        except ONNXRUNTIME_ERRORS as exc:
            print(f'onnxruntime failed at {size[0]}x{size[1]}: {str(exc).splitlines()[0]}')
            failed = True
            continue
        print(f'onnxruntime vs PyTorch at {size[0]}x{size[1]}: raw head outputs max abs diff '
              f'{result["raw_max_abs_diff"]:.2e}; detections {result["detections_onnx"]} vs '
              f'{result["detections_torch"]}, boxes max abs diff '
              f'{result["box_max_abs_diff"]:.2e} px')
        if (result['raw_max_abs_diff'] > args.atol
                or result['detections_onnx'] != result['detections_torch']):
            failed = True
    if failed:
        os.remove(unchecked)
        advice = (' A dynamic export holds only the branches on the input size taken at the '
                  'size it was traced at (e.g. the windows of windowed attention): export at '
                  'the size it will run at, without --dynamic.' if args.dynamic else '')
        sys.exit(f'The export does not reproduce PyTorch (--atol {args.atol}); {args.out} was '
                 f'not written.{advice}')
    os.replace(unchecked, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
