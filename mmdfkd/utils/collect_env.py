"""Report the versions of the stack mmdfkd runs on.

Run as ``python -m mmdfkd.utils.collect_env`` or ``python tools/collect_env.py``.
"""
import importlib
import importlib.metadata
import platform
import sys
from collections import OrderedDict


def _version(module_name: str) -> str:
    """The installed version of a package that imports, else why it is not available."""
    try:
        importlib.import_module(module_name)
        return importlib.metadata.version(module_name)
    except Exception as exc:  # a missing or broken package is what this report is for
        return f'not available ({type(exc).__name__}: {exc})'


def _mmcv_ops_status() -> str:
    try:
        import torch
        from mmcv.ops import nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        _, keep = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
        return 'ok (nms runs)' if keep.tolist() == [0] else f'wrong nms result {keep.tolist()}'
    except Exception as exc:
        return f'not loaded ({type(exc).__name__}: {exc})'


def collect_env() -> 'OrderedDict[str, str]':
    """Collects versions of python, torch, CUDA, mmcv (and its ops), mmengine, mmdet, timm,
    pycocotools and mmdfkd.

    Returns:
        An ordered mapping from component name to its version or status.
    """
    import torch
    info = OrderedDict()
    info['sys.platform'] = sys.platform
    info['Python'] = sys.version.replace('\n', ' ')
    info['machine'] = platform.machine()
    info['PyTorch'] = torch.__version__
    info['PyTorch CUDA'] = str(torch.version.cuda)
    info['CUDA available'] = str(torch.cuda.is_available())
    if torch.cuda.is_available():
        info['GPU'] = torch.cuda.get_device_name(0)
    for name in ('torchvision', 'mmengine', 'mmcv'):
        info[name] = _version(name)
    info['mmcv ops'] = _mmcv_ops_status()
    for name in ('mmdet', 'timm', 'pycocotools', 'numpy', 'mmdfkd'):
        info[name] = _version(name)
    return info


def main() -> None:
    """Prints one ``name: value`` line per component."""
    for name, value in collect_env().items():
        print(f'{name}: {value}')


if __name__ == '__main__':
    main()
