"""The shapes demo dataset generator (tools/demo/shapes_coco.py) and its command-line tool
(tools/make_demo_data.py)."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from demo import shapes_coco
from demo.shapes_coco import (SHAPES_CLASSES, make_shapes_coco, pick_contrasting_colour,
                              visible_fractions)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Small images keep the tests fast; 128 px is the smallest side where the default scale range
# still gives objects of at least 8 px.
SMALL = dict(num_train=3, num_val=2, img_size=128)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f'cannot read {path}'
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _split_files(root: Path, split: str) -> list[Path]:
    return sorted((root / split).glob('*.png'))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A non-square dataset large enough for every class to appear."""
    root = tmp_path_factory.mktemp('shapes') / 'demo'
    summary = make_shapes_coco(root, num_train=60, num_val=10, img_size=(160, 128), seed=3)
    return root, summary


def test_visible_fractions_hand_computed():
    a = np.zeros((10, 10), dtype=bool)
    a[0:4, 0:5] = True  # 20 px
    b = np.zeros((10, 10), dtype=bool)
    b[2:6, 2:7] = True  # 20 px, hides a[2:4, 2:5] = 6 px of a
    c = np.zeros((10, 10), dtype=bool)
    c[4:10, :] = True  # 60 px, hides b[4:6, 2:7] = 10 px of b, none of a
    np.testing.assert_allclose(visible_fractions([a, b, c]), [14 / 20, 10 / 20, 1.0])
    # A later mask hides an earlier one, never the reverse.
    np.testing.assert_allclose(visible_fractions([c, b]), [50 / 60, 1.0])
    with pytest.raises(ValueError, match='mask 1 is empty'):
        visible_fractions([a, np.zeros_like(a)])


def test_pick_contrasting_colour_stands_out_from_every_background_colour():
    # Half dark grey, half light grey: a colour equal to the mean (130) or to either half would
    # be hard to see on part of the object.
    background = np.repeat([[90, 90, 90], [170, 170, 170]], 50, axis=0)
    for seed in range(50):
        colour = pick_contrasting_colour(np.random.default_rng(seed), background,
                                         min_contrast=100)
        assert colour.dtype == np.uint8 and colour.shape == (3,)
        distances = np.linalg.norm(colour.astype(float) - [[90, 90, 90], [170, 170, 170]], axis=1)
        assert distances.min() >= 100, f'seed {seed}: colour {colour} too close to background'


def test_same_seed_same_dataset_and_smaller_dataset_is_prefix(tmp_path: Path):
    make_shapes_coco(tmp_path / 'a', seed=0, **SMALL)
    make_shapes_coco(tmp_path / 'b', seed=0, **SMALL)
    make_shapes_coco(tmp_path / 'other', seed=1, **SMALL)
    make_shapes_coco(tmp_path / 'short', seed=0, num_train=2, num_val=1, img_size=128)
    for split in ('train', 'val'):
        ann = f'annotations/instances_{split}.json'
        assert (tmp_path / 'a' / ann).read_bytes() == (tmp_path / 'b' / ann).read_bytes()
        assert (tmp_path / 'a' / ann).read_bytes() != (tmp_path / 'other' / ann).read_bytes()
        files = _split_files(tmp_path / 'a', split)
        assert [f.name for f in files] == [f.name for f in _split_files(tmp_path / 'b', split)]
        for file in files:
            np.testing.assert_array_equal(_read_rgb(file),
                                          _read_rgb(tmp_path / 'b' / split / file.name))
            assert not np.array_equal(_read_rgb(file),
                                      _read_rgb(tmp_path / 'other' / split / file.name))

    full = json.loads((tmp_path / 'a/annotations/instances_train.json').read_text())
    short = json.loads((tmp_path / 'short/annotations/instances_train.json').read_text())
    assert short['images'] == full['images'][:2]
    assert short['annotations'] == [a for a in full['annotations'] if a['image_id'] <= 2]
    np.testing.assert_array_equal(_read_rgb(tmp_path / 'short/train/000002.png'),
                                  _read_rgb(tmp_path / 'a/train/000002.png'))


def test_output_is_valid_coco(dataset: tuple[Path, dict]):
    root, summary = dataset
    for split, num_images in (('train', 60), ('val', 10)):
        coco = COCO(str(root / f'annotations/instances_{split}.json'))
        cats = coco.loadCats(coco.getCatIds())
        assert [c['id'] for c in cats] == list(range(1, len(SHAPES_CLASSES) + 1))
        assert tuple(c['name'] for c in cats) == SHAPES_CLASSES
        images = coco.loadImgs(coco.getImgIds())
        assert len(images) == num_images == summary[split]['images']
        assert len(coco.getAnnIds()) == summary[split]['annotations']
        for info in images:
            assert (info['width'], info['height']) == (160, 128)
            image = _read_rgb(root / split / info['file_name'])
            assert image.shape == (128, 160, 3) and image.dtype == np.uint8
            anns = coco.loadAnns(coco.getAnnIds(imgIds=info['id']))
            assert anns, f"image {info['file_name']} has no annotation"
            for ann in anns:
                x, y, w, h = ann['bbox']
                assert ann['iscrowd'] == 0
                assert ann['category_id'] in coco.getCatIds()
                assert x >= 0 and y >= 0 and x + w <= 160 and y + h <= 128, ann
                # No object smaller than 8 px; scale_range[0] * 128 px is about 10 px.
                assert w >= 8 and h >= 8, ann
                assert 0 < ann['area'] <= w * h, ann


def test_every_class_appears(dataset: tuple[Path, dict]):
    root, summary = dataset
    coco = COCO(str(root / 'annotations/instances_train.json'))
    seen = {ann['category_id'] for ann in coco.loadAnns(coco.getAnnIds())}
    assert seen == set(range(1, len(SHAPES_CLASSES) + 1))
    assert all(count > 0 for count in summary['train']['per_class'].values())


def test_existing_output_is_reused_or_rejected(tmp_path: Path):
    out = tmp_path / 'demo'
    first = make_shapes_coco(out, seed=0, **SMALL)
    ann_file = out / 'annotations/instances_train.json'
    mtime = ann_file.stat().st_mtime_ns
    again = make_shapes_coco(out, seed=0, **SMALL)
    assert not first['reused'] and again['reused']
    assert {k: v for k, v in again.items() if k != 'reused'} == \
        {k: v for k, v in first.items() if k != 'reused'}
    assert ann_file.stat().st_mtime_ns == mtime

    old_json = ann_file.read_bytes()
    with pytest.raises(FileExistsError, match=r'seed was 0, now 1.*--overwrite'):
        make_shapes_coco(out, seed=1, **SMALL)
    assert ann_file.read_bytes() == old_json
    assert not make_shapes_coco(out, seed=1, overwrite=True, **SMALL)['reused']
    assert ann_file.read_bytes() != old_json
    assert json.loads((out / 'meta.json').read_text())['params']['seed'] == 1

    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('not a dataset')
    with pytest.raises(FileExistsError, match='no meta.json'):
        make_shapes_coco(foreign, **SMALL)
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert make_shapes_coco(empty, **SMALL)['train']['images'] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo', 'empty', 'foreign']


def test_interrupted_run_leaves_no_partial_dataset(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / 'demo'
    make_shapes_coco(out, seed=0, **SMALL)
    write_png = shapes_coco._write_png
    calls = []

    def interrupted_write(path: Path, image: np.ndarray) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write_png(path, image)

    monkeypatch.setattr(shapes_coco, '_write_png', interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        make_shapes_coco(tmp_path / 'fresh', seed=0, **SMALL)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        make_shapes_coco(out, seed=1, overwrite=True, **SMALL)
    # No half dataset, no leftover temporary folder, and the old dataset is untouched.
    assert [p.name for p in tmp_path.iterdir()] == ['demo']
    assert json.loads((out / 'meta.json').read_text())['params']['seed'] == 0
    assert len(_split_files(out, 'train')) == 3


def test_cli_end_to_end(tmp_path: Path):
    # Run from outside the repository so the script must find the package on its own.
    cmd = [sys.executable, str(REPO_ROOT / 'tools/make_demo_data.py'), '--out', 'demo',
           '--num-train', '3', '--num-val', '2', '--img-size', '128']
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'generated shapes dataset' in result.stdout
    assert 'train: 3 images' in result.stdout and 'val: 2 images' in result.stdout
    assert len(_split_files(tmp_path / 'demo', 'train')) == 3
    assert COCO(str(tmp_path / 'demo/annotations/instances_val.json')).getImgIds() == [1, 2]

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0 and 'reused existing' in rerun.stdout, rerun.stderr
    mismatch = subprocess.run(cmd + ['--seed', '1'], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
    assert mismatch.returncode != 0 and '--overwrite' in mismatch.stderr
    overwrite = subprocess.run(cmd + ['--seed', '1', '--overwrite'], cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
    assert overwrite.returncode == 0 and 'generated' in overwrite.stdout, overwrite.stderr
