"""LanczosResize: everything but the image is what mmdet's Resize makes of the same input
(boxes, masks, shapes, scale factors), the image is Lanczos-resampled (checked against PIL),
uint8 and clipped; ``only_upscale`` leaves shrinking to mmcv; it builds from a config."""
import numpy as np
import pytest
import torch
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from PIL import Image

import mmdfkd  # noqa: F401  (registers LanczosResize)
from mmdfkd.datasets.transforms import LanczosResize
from mmdfkd.models.utils.lanczos import lanczos_resize


def _image(height: int = 40, width: int = 60) -> np.ndarray:
    """A uint8 BGR image: a black and white checkerboard of 5-pixel squares (sharp edges,
    where Lanczos overshoots 0 and 255) and two ramps."""
    yy, xx = np.mgrid[0:height, 0:width]
    checker = ((yy // 5 + xx // 5) % 2) * 255
    return np.stack([checker, xx * 255 // width, yy * 255 // height], -1).astype(np.uint8)


def _results(img: np.ndarray) -> dict:
    """What the loading transforms hand to a resize: the image, its shapes, two boxes (one
    reaching past the right border) and their masks."""
    height, width = img.shape[:2]
    masks = np.zeros((2, height, width), np.uint8)
    masks[0, 5:20, 4:30] = 1
    masks[1, 10:38, 40:] = 1
    return dict(img=img, img_shape=(height, width), ori_shape=(height, width),
                gt_bboxes=HorizontalBoxes(torch.tensor([[4., 5., 30., 20.],
                                                        [40., 10., width + 5., 38.]])),
                gt_bboxes_labels=np.array([0, 3]), gt_ignore_flags=np.array([False, False]),
                gt_masks=BitmapMasks(masks, height, width))


def _assert_same(value, expected, key):
    if isinstance(expected, HorizontalBoxes):
        torch.testing.assert_close(value.tensor, expected.tensor, msg=key)
    elif isinstance(expected, BitmapMasks):
        np.testing.assert_array_equal(value.masks, expected.masks, err_msg=key)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(value, expected, err_msg=key)
    else:
        assert value == expected, key


@pytest.mark.parametrize('settings', [
    dict(scale=(128, 128), keep_ratio=True),
    dict(scale=(150, 100), keep_ratio=False),
    dict(scale_factor=2.5),
    dict(scale=(32, 32), keep_ratio=True),
], ids=['keep_ratio', 'exact_scale', 'scale_factor', 'downscale'])
def test_everything_but_the_image_is_what_mmdet_resize_makes(settings):
    lanczos = LanczosResize(order=3, **settings)(_results(_image()))
    bilinear = Resize(**settings)(_results(_image()))
    assert set(lanczos) == set(bilinear)
    for key in bilinear:
        if key != 'img':
            _assert_same(lanczos[key], bilinear[key], key)
    assert lanczos['img'].shape == bilinear['img'].shape
    assert lanczos['img'].shape[:2] == lanczos['img_shape']
    assert lanczos['img'].dtype == np.uint8
    assert not np.array_equal(lanczos['img'], bilinear['img'])  # resampled differently


def test_the_image_is_pils_lanczos_rounded_and_clipped():
    """Each channel matches PIL's order-3 Lanczos of it as a float image, rounded and clipped
    to 0-255, away from the borders (10 output pixels: the kernel's 3 input pixels at a x2.5
    upscale, where PIL renormalizes its taps and LanczosResize replicates the border).
    (PIL's own 8-bit resize clips between its two passes, so it differs on the overshoots.)"""
    img = _image()
    resized = LanczosResize(scale=(150, 100), order=3)(_results(img))['img']
    assert resized.min() == 0 and resized.max() == 255  # overshoots clipped, not wrapped
    for channel in range(3):
        plane = Image.fromarray(img[..., channel].astype(np.float32))
        pil = np.asarray(plane.resize((150, 100), Image.LANCZOS))
        expected = np.clip(np.round(pil), 0, 255)
        difference = np.abs(resized[..., channel].astype(np.float32) - expected)
        # Off by one only where a value is within float32 rounding of a half integer (2% of
        # the checkerboard's pixels, whose symmetry makes exact halves).
        assert difference[10:-10, 10:-10].max() <= 1
        assert (difference[10:-10, 10:-10] > 0).mean() < 0.05


def test_order_five_differs_from_order_three():
    three = LanczosResize(scale=(150, 100), order=3)(_results(_image()))['img']
    five = LanczosResize(scale=(150, 100), order=5)(_results(_image()))['img']
    assert not np.array_equal(three, five)


def test_only_upscale_leaves_shrinking_to_mmcv():
    small, large = _image(40, 60), _image(200, 300)
    settings = dict(scale=(128, 128), keep_ratio=True)
    only_up = LanczosResize(only_upscale=True, **settings)
    shrunk = only_up(_results(large))['img']
    np.testing.assert_array_equal(shrunk, Resize(**settings)(_results(large))['img'])
    enlarged = only_up(_results(small))['img']
    np.testing.assert_array_equal(enlarged, LanczosResize(**settings)(_results(small))['img'])
    assert not np.array_equal(enlarged, Resize(**settings)(_results(small))['img'])


@pytest.mark.parametrize('dtype', [np.uint8, np.float32])
def test_grayscale_and_float_images_keep_their_layout_and_dtype(dtype):
    """A (H, W) image stays 2-D; a float image keeps its unrounded, unclipped values."""
    img = _image()[..., 0].astype(dtype)
    resized = LanczosResize(scale=(150, 100))(dict(img=img))['img']
    assert resized.shape == (100, 150) and resized.dtype == dtype
    floats = lanczos_resize(torch.from_numpy(img.astype(np.float32))[None, None],
                            (100, 150))[0, 0].numpy()
    expected = floats if dtype == np.float32 else np.clip(np.round(floats), 0, 255)
    np.testing.assert_allclose(resized, expected, atol=1e-4)
    if dtype == np.float32:
        assert resized.min() < 0 and resized.max() > 255  # Lanczos overshoot kept


def test_builds_from_a_config_and_refuses_a_bad_order():
    transform = TRANSFORMS.build(dict(type='LanczosResize', scale=(128, 128), keep_ratio=True,
                                      order=5))
    assert isinstance(transform, LanczosResize) and transform.order == 5
    assert 'order=5, only_upscale=False' in repr(transform)
    assert transform(_results(_image()))['img'].shape == (85, 128, 3)
    with pytest.raises(ValueError, match=r'LanczosResize: order must be an integer >= 1 '
                                         r'\(3 and 5 are usual\), got 0'):
        LanczosResize(scale=(128, 128), order=0)
