"""mmdet's ``Resize`` with the image resampled by a Lanczos kernel."""
from numbers import Integral
from typing import Optional, Tuple, Union

import mmcv
import numpy as np
import torch
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS

from mmdfkd.models.utils.lanczos import lanczos_resize


@TRANSFORMS.register_module()
class LanczosResize(Resize):
    """Resizes like mmdet's :class:`~mmdet.datasets.transforms.Resize`, with the image
    resampled by :func:`~mmdfkd.models.utils.lanczos.lanczos_resize` (a Lanczos kernel of
    order ``order``).

    Only the image's resampling differs: the output size, ``img_shape``, ``scale``,
    ``scale_factor``, ``keep_ratio``, the boxes (rescaled, clipped with
    ``clip_object_border``), masks, segmentation map and ``homography_matrix`` are mmdet's,
    so evaluation maps predictions back to the original image as after ``Resize``. Integer
    images (the loader's uint8 BGR) are resampled in float32, rounded and clipped to their
    dtype's range (Lanczos overshoots at edges); float images keep their values.

    Args:
        scale, scale_factor, keep_ratio, clip_object_border: As for mmdet's ``Resize``.
        order: The Lanczos kernel's order, an integer >= 1 (3 and 5 are usual). Defaults
            to 3.
        only_upscale: If True, an image that is not enlarged along either axis is resized by
            mmcv with ``backend`` and ``interpolation`` instead: Lanczos is used only for
            images smaller than the target size. Defaults to False.
        backend, interpolation: mmcv's resizing of the images ``only_upscale`` leaves to it.
            Default to ``'cv2'`` and ``'bilinear'``.

    Raises:
        ValueError: If ``order`` is not an integer >= 1.
    """

    def __init__(self,
                 scale: Optional[Union[int, Tuple[int, int]]] = None,
                 scale_factor: Optional[Union[float, Tuple[float, float]]] = None,
                 keep_ratio: bool = False,
                 clip_object_border: bool = True,
                 order: int = 3,
                 only_upscale: bool = False,
                 backend: str = 'cv2',
                 interpolation: str = 'bilinear') -> None:
        if isinstance(order, bool) or not isinstance(order, Integral) or order < 1:
            raise ValueError(f'LanczosResize: order must be an integer >= 1 (3 and 5 are '
                             f'usual), got {order!r}.')
        super().__init__(scale=scale, scale_factor=scale_factor, keep_ratio=keep_ratio,
                         clip_object_border=clip_object_border, backend=backend,
                         interpolation=interpolation)
        self.order = int(order)
        self.only_upscale = only_upscale

    def _resize_img(self, results: dict) -> None:
        """Resizes ``results['img']`` to ``results['scale']`` (the largest size within it with
        ``keep_ratio``, as mmcv's ``imrescale``) and records ``img_shape``, ``scale_factor``
        and ``keep_ratio``."""
        img = results.get('img', None)
        if img is None:
            return
        height, width = img.shape[:2]
        if self.keep_ratio:
            new_w, new_h = mmcv.rescale_size((width, height), results['scale'])
        else:
            new_w, new_h = (int(s) for s in results['scale'])
        if self.only_upscale and new_h <= height and new_w <= width:
            super()._resize_img(results)
            return
        resized = _lanczos_resize_array(img, (new_h, new_w), self.order)
        results['img'] = resized
        results['img_shape'] = resized.shape[:2]
        results['scale_factor'] = (new_w / width, new_h / height)
        results['keep_ratio'] = self.keep_ratio

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, scale_factor={self.scale_factor}, '
                f'keep_ratio={self.keep_ratio}, clip_object_border={self.clip_object_border}, '
                f'order={self.order}, only_upscale={self.only_upscale}, '
                f'backend={self.backend}, interpolation={self.interpolation})')


def _lanczos_resize_array(img: np.ndarray, size: Tuple[int, int], order: int) -> np.ndarray:
    """Resizes an (H, W) or (H, W, C) image array to ``size`` (h, w), keeping its dtype."""
    planes = torch.from_numpy(np.ascontiguousarray(img))
    if not planes.is_floating_point():
        planes = planes.float()
    planes = planes.reshape(*img.shape[:2], -1).permute(2, 0, 1)[None]
    resized = lanczos_resize(planes, size, order)[0].permute(1, 2, 0)
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        resized = resized.round().clamp(int(info.min), int(info.max))
    return resized.reshape(*size, *img.shape[2:]).numpy().astype(img.dtype)
