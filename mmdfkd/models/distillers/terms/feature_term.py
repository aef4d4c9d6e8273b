"""Feature-map terms: a loss comparing multi-level (N, C, H, W) maps, level by level."""
from typing import Any, Dict, List, Sequence, Tuple

from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdfkd.registry import DISTILL_TERMS
from .base import SourcePairTerm, TermBatch, TermConfig


@DISTILL_TERMS.register_module(name='feature')
class FeatureTerm(SourcePairTerm):
    """Compares the student's and each teacher's feature maps, e.g. ``student='neck',
    teacher='neck'`` (losses with ``input_kind='feature'``: ``FeatureMSELoss``,
    ``ChannelWiseDistillLoss``, ``PKDLoss``).

    Levels are matched by stride, measured on the build-time probe: ``levels`` lists the
    teacher levels to use (default: all that have a student level of the same stride). Where
    the channel counts differ, a learned 1x1 convolution (an *adapter*, one per teacher and
    level, key ``'<teacher>_<level>'`` in :attr:`adapters`) maps the student's channels to the
    teacher's. Where a teacher pads its input to a larger size, the common top-left area is
    compared. The loss is called once per level and the levels are summed.

    ``fg_mask=dict(score_thr=0.3, bg_weight=0.1)`` weights each position by 1 inside a
    teacher's boxes scoring at least ``score_thr`` and ``bg_weight`` elsewhere; only for
    losses that take a weight (``accepts_weight``).

    Raises:
        ValueError: If ``fg_mask`` is set for a loss that takes no weight; at the probe, if a
            level does not exist or no student level has its stride.
    """

    config_keys = ('student', 'teacher', 'levels', 'fg_mask')

    def __init__(self, config: TermConfig, student: nn.Module,
                 teachers: Sequence[nn.Module]) -> None:
        super().__init__(config, student, teachers)
        if config.fg_mask is not None and not getattr(config.loss, 'accepts_weight', False):
            raise ValueError(f'distill_losses[{config.index}]: {type(config.loss).__name__} '
                             'takes no position weights, so fg_mask does not apply; use it '
                             'with FeatureMSELoss.')
        self.levels = config.levels
        self.fg_mask = config.fg_mask
        # Filled by the probe: per teacher, (teacher level, student level, stride) triples.
        self.level_pairs: Dict[int, List[Tuple[int, int, int]]] = {}
        self.adapters = nn.ModuleDict()

    @property
    def needs_detections(self) -> bool:
        return bool(self.fg_mask)

    def probe(self, student_outputs: Dict[str, Any], teacher_outputs: List[Dict[str, Any]],
              shape: Tuple[int, int]) -> None:
        """Matches levels by stride and builds adapters, for each of the term's teachers."""
        for t in self.teacher_ids:
            self._match_levels(t, student_outputs[self.student_source],
                               teacher_outputs[t][self.teacher_source], shape)

    def _match_levels(self, teacher_id: int, student_maps: Any, teacher_maps: Any,
                      shape: Tuple[int, int]) -> None:
        student_maps = as_levels(student_maps, self.student_source)
        teacher_maps = as_levels(teacher_maps, self.teacher_source)
        student_strides = {shape[0] // m.shape[-2]: i for i, m in enumerate(student_maps)}
        levels = self.levels if self.levels is not None else [
            i for i, m in enumerate(teacher_maps) if shape[0] // m.shape[-2] in student_strides]
        pairs = []
        for level in levels:
            if not 0 <= level < len(teacher_maps):
                raise ValueError(f'{self.name}: teacher level {level} does not exist; the '
                                 f'teacher source {self.teacher_source!r} has '
                                 f'{len(teacher_maps)} levels.')
            stride = shape[0] // teacher_maps[level].shape[-2]
            if stride not in student_strides:
                raise ValueError(
                    f'{self.name}: teacher level {level} has stride {stride}, and no student '
                    f'level of {self.student_source!r} has it (student strides: '
                    f'{sorted(student_strides)}). Choose `levels` among the shared strides.')
            student_level = student_strides[stride]
            pairs.append((level, student_level, stride))
            c_s = student_maps[student_level].shape[1]
            c_t = teacher_maps[level].shape[1]
            key = f'{teacher_id}_{level}'
            if c_s != c_t and key not in self.adapters:
                self.adapters[key] = nn.Conv2d(c_s, c_t, kernel_size=1)
        if not pairs:
            raise ValueError(f'{self.name}: no level of {self.teacher_source!r} shares a stride '
                             f'with the student\'s {self.student_source!r}.')
        self.level_pairs[teacher_id] = pairs

    def describe(self) -> str:
        strides = sorted({s for pairs in self.level_pairs.values() for *_, s in pairs})
        return (f'{self.name} ({type(self.loss).__name__}, {self.kind}, levels by stride '
                f'{strides})')

    def teacher_loss(self, teacher_id: int, batch: TermBatch) -> Tensor:
        """The loss summed over the matched levels of one teacher."""
        teacher_out = batch.teacher_outputs[teacher_id]
        student_maps = as_levels(batch.student_outputs[self.student_source],
                                 self.student_source)
        teacher_maps = as_levels(teacher_out[self.teacher_source], self.teacher_source)
        total = 0.
        for level, student_level, stride in self.level_pairs[teacher_id]:
            s = student_maps[student_level]
            t = teacher_maps[level].to(s.dtype)
            key = f'{teacher_id}_{level}'
            if key in self.adapters:
                s = self.adapters[key](s)
            if s.shape[-2:] != t.shape[-2:]:
                # Teachers pad to their own size divisor; compare the common area.
                h, w = min(s.shape[-2], t.shape[-2]), min(s.shape[-1], t.shape[-1])
                s, t = s[..., :h, :w], t[..., :h, :w]
            if self.fg_mask:
                weight = foreground_weight(teacher_out['detections'], t, stride, **self.fg_mask)
                total = total + self.loss(s, t, weight)
            else:
                total = total + self.loss(s, t)
        return total


def as_levels(maps: Any, source: str) -> List[Tensor]:
    """A source's output as a list of levels.

    Args:
        maps: One (N, C, H, W) map or a list/tuple of them.
        source: The source, for the message.

    Raises:
        TypeError: If the output is not (a list of) 4-D maps.
    """
    levels = [maps] if isinstance(maps, Tensor) else list(maps)
    if not all(isinstance(m, Tensor) and m.dim() == 4 for m in levels):
        raise TypeError(f'Source {source!r} is not a (list of) (N, C, H, W) feature maps; use a '
                        'module whose output is, e.g. "neck".')
    return levels


def foreground_weight(detections: List[InstanceData], feature: Tensor, stride: int,
                      score_thr: float = 0.3, bg_weight: float = 0.1) -> Tensor:
    """Position weights from a teacher's detections.

    A box (x1, y1, x2, y2) in input pixels covers rows ``int(y1 / stride)`` up to
    ``round(y2 / stride)`` (exclusive, at least one row) and the same for columns.

    Args:
        detections: Per image, ``InstanceData`` with ``bboxes`` (K, 4) and ``scores`` (K,).
        feature: The level's map, (N, C, H, W); gives the shape, dtype and device.
        stride: The level's stride in input pixels.
        score_thr: Boxes scoring below this are ignored.
        bg_weight: Weight outside the boxes.

    Returns:
        (N, 1, H, W): 1 inside the boxes, ``bg_weight`` elsewhere.
    """
    num, _, height, width = feature.shape
    weight = feature.new_full((num, 1, height, width), bg_weight)
    for i, dets in enumerate(detections):
        boxes = dets.bboxes[dets.scores >= score_thr] / stride
        for x1, y1, x2, y2 in boxes.tolist():
            weight[i, :, int(y1):max(int(y1) + 1, int(round(y2))),
                   int(x1):max(int(x1) + 1, int(round(x2)))] = 1.0
    return weight
