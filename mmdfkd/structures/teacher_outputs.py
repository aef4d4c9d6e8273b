"""The stored teacher outputs of a synthetic bank (FKD / LIB-KD style): the one definition of
their format.

A bank written by ``tools/generate_synthetic.py --store-outputs`` holds, next to its images,
one file per image, ``teacher_outputs/NNNNNNN.pt`` (the image id, 7 digits)::

    {'teacher0': {'sources': {source: output, ...},   # the distiller's teacher sources
                  'detections': {'bboxes': (K, 4), 'scores': (K,), 'labels': (K,)}},
     'teacher1': {...}, ...}

``source`` is a source as a distillation term names it (``'neck'``, ``'bbox_head'``, ...);
``output`` is what the module returned for this image alone: tensors with a batch dimension
of 1, in fp16, nested in lists and tuples as the module nests them. Detections are the
teacher's post-NMS predictions in image pixels, in its own labels.

:func:`make_entries` and :func:`save_entry` write it (the tool), :func:`load_entry` reads it
(``SyntheticBankDataset``) and :func:`collate_teacher_outputs` turns a batch of entries back
into batched outputs (``DetectionDistiller``).
"""
import os.path as osp
from typing import Any, Dict, List, Sequence, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdfkd.utils.checkpoint_files import load_checkpoint_file

# The folder of the per-image files, inside a bank.
OUTPUTS_DIR = 'teacher_outputs/'


def teacher_key(index: int) -> str:
    """The key of teacher ``index``'s outputs in an entry."""
    return f'teacher{index}'


def entry_path(outputs_dir: str, img_id: int) -> str:
    """The file of image ``img_id``'s entry."""
    return osp.join(outputs_dir, f'{int(img_id):07d}.pt')


def make_entries(per_teacher: Sequence[Tuple[Dict[str, Any], Sequence[InstanceData]]]
                 ) -> List[dict]:
    """Splits the teachers' batched outputs into one entry per image.

    Args:
        per_teacher: Per teacher, ``(sources, detections)``: ``{source: batched output}``
            (tensors of batch N nested in lists/tuples) and per image its ``InstanceData``
            with ``bboxes``, ``scores`` and ``labels``.

    Returns:
        N entries in the bank's format: fp16 sources of batch 1, detections, on the CPU.
    """
    num = len(per_teacher[0][1])
    entries = []
    for i in range(num):
        entry = {}
        for index, (sources, detections) in enumerate(per_teacher):
            dets = detections[i]
            entry[teacher_key(index)] = dict(
                sources={spec: _slice(value, i) for spec, value in sources.items()},
                detections=dict(bboxes=dets.bboxes.cpu(), scores=dets.scores.cpu(),
                                labels=dets.labels.cpu()))
        entries.append(entry)
    return entries


def save_entry(entry: dict, outputs_dir: str, img_id: int) -> None:
    """Writes one image's entry to ``outputs_dir``."""
    torch.save(entry, entry_path(outputs_dir, img_id))


def load_entry(outputs_dir: str, img_id: int) -> dict:
    """Reads image ``img_id``'s entry (checked, weights only), tensors on the CPU."""
    return load_checkpoint_file(entry_path(outputs_dir, img_id))


def collate_teacher_outputs(entries: Sequence[dict], index: int, sources: Sequence[str],
                            needs_detections: bool, like: Tensor) -> dict:
    """Teacher ``index``'s outputs for a batch, from the entries of its images.

    Args:
        entries: Per image of the batch, its entry.
        index: The teacher.
        sources: The sources to return.
        needs_detections: Whether to return the detections too.
        like: A tensor whose device and dtype the outputs take (the batch's inputs).

    Returns:
        ``{source: batched output}`` and, if ``needs_detections``, ``'detections'``: per
        image an ``InstanceData``. The same structure as running the teacher gives.

    Raises:
        KeyError: If the entries lack the teacher or a source; the message says to regenerate
            the bank with the config being trained.
    """
    key = teacher_key(index)
    teacher_entries = []
    for entry in entries:
        if key not in entry:
            raise KeyError(f'The stored teacher outputs hold {sorted(entry)}, not {key}: '
                           'regenerate the bank with this config (--store-outputs).')
        teacher_entries.append(entry[key])
    out: dict = {}
    for spec in dict.fromkeys(sources):
        missing = [e for e in teacher_entries if spec not in e['sources']]
        if missing:
            raise KeyError(f'The stored teacher outputs lack the source {spec!r} (they hold '
                           f'{sorted(missing[0]["sources"])}): regenerate the bank with this '
                           'config (--store-outputs).')
        out[spec] = _concat([e['sources'][spec] for e in teacher_entries], like)
    if needs_detections:
        out['detections'] = [InstanceData(**{k: v.to(like.device) for k, v in
                                             e['detections'].items()}) for e in teacher_entries]
    return out


def _slice(structure: Any, index: int) -> Any:
    """Sample ``index`` of a batched output (tensors nested in lists/tuples), fp16, batch 1."""
    if isinstance(structure, Tensor):
        return structure[index:index + 1].detach().half().cpu().clone()
    return type(structure)(_slice(part, index) for part in structure)


def _concat(structures: List[Any], like: Tensor) -> Any:
    """Concatenates per-sample outputs along the batch, on ``like``'s device and dtype."""
    first = structures[0]
    if isinstance(first, Tensor):
        return torch.cat(structures).to(device=like.device, dtype=like.dtype)
    return type(first)(_concat(list(parts), like) for parts in zip(*structures))
