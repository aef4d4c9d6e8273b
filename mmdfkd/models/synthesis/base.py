"""What every way of producing synthetic images shares: the targets it is given, the batch it
hands back, the interface, and how it is built from a config."""
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdfkd.registry import SYNTHESIZERS
from .inversion_loss import InversionLoss

T = TypeVar('T')

#: ``retry(attempt, redraw)``: runs ``attempt`` (one synthesis step) and, if it raises
#: :class:`NonFiniteSynthesisError`, calls ``redraw`` (if given) and tries again, as a policy
#: decides (``ImageSynthesisHook`` counts, logs and gives up after too many in a row).
Retry = Callable[[Callable[[], T], Optional[Callable[[], None]]], T]


class NonFiniteSynthesisError(FloatingPointError):
    """A synthesis step met a NaN or inf loss, gradient or image; nothing was updated with it."""


def run_once(attempt: Callable[[], T], redraw: Optional[Callable[[], None]] = None) -> T:
    """The retry policy that does not retry: a :class:`NonFiniteSynthesisError` propagates."""
    return attempt()


@dataclass
class Targets:
    """The targets of a batch of images to synthesize.

    Attributes:
        boxes: Per image, target boxes (K_i, 4) float32, ``x1, y1, x2, y2`` in pixels.
        labels: Per image, target labels (K_i,) int64.
        metainfo: Per image, its data sample metainfo (``img_id``, ``img_shape``, ...).
    """
    boxes: List[Tensor]
    labels: List[Tensor]
    metainfo: List[dict]

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def img_hw(self) -> Tuple[int, int]:
        """The image size (H, W), the same for every image of the batch."""
        return tuple(self.metainfo[0]['img_shape'][:2])

    def to(self, device: torch.device) -> 'Targets':
        """A copy with boxes and labels on ``device`` (float32 and int64), metainfo copied."""
        return Targets([b.float().to(device) for b in self.boxes],
                       [lb.long().to(device) for lb in self.labels],
                       [dict(m) for m in self.metainfo])

    def data_samples(self) -> List[DetDataSample]:
        """Data samples carrying the targets as ground truth, as the student is trained on
        them (an empty ``ignored_instances``, which mmdet's assigners read when present)."""
        samples = []
        for boxes, labels, meta in zip(self.boxes, self.labels, self.metainfo):
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = InstanceData(bboxes=boxes.clone(), labels=labels.clone())
            sample.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                                    labels=torch.zeros(0, dtype=torch.long))
            samples.append(sample)
        return samples


@dataclass
class SyntheticBatch:
    """Images a synthesizer made, with their targets.

    Attributes:
        images: Per image, (3, H, W) uint8 on the CPU, in the data loader's pixel space and
            channel order (BGR), as a real image would be.
        targets: Their targets (false-positive-sampled boxes included), on the CPU.
        log: Loss parts of the last synthesis step, as floats (``syn_det_t0``, ...); empty if
            no step ran.
        first_log: Loss parts of the first step that made these images, for
            :meth:`Synthesizer.synthesize`; empty otherwise.
    """
    images: List[Tensor]
    targets: Targets
    log: Dict[str, float] = field(default_factory=dict)
    first_log: Dict[str, float] = field(default_factory=dict)


class Synthesizer(metaclass=ABCMeta):
    """A way of producing synthetic images from frozen teachers: targets in, images out.

    Subclasses register in ``mmdfkd.registry.SYNTHESIZERS`` and are built by
    :func:`build_synthesizer` (``ImageSynthesisHook``, ``tools/generate_synthetic.py``) from
    ``synthesizer=dict(type=..., loss=dict(...), ...)``. Each owns its state (images in
    progress, a network and its optimizer) and saves it with :meth:`state_dict`.

    Args:
        teachers: Frozen teacher detectors (eval mode), each with a ``data_preprocessor``.
        teacher_weights: One weight per teacher.
        student: The student detector, read by the competition term of the loss
            (``loss=dict(adi_weight=...)``). Defaults to None (no competition term).
        dataset: The train dataset (``SyntheticDetDataset``): it draws the targets of a batch
            whose items carry none (``draw_targets=False``) and sizes networks. Defaults to
            None.
        loss: Arguments of :class:`InversionLoss`, the loss the images are made to minimize.
            Defaults to None (its defaults).
    """

    #: Whether :meth:`update` trains parameters of the synthesizer's own (a network).
    has_parameters = False

    def __init__(self,
                 teachers: Sequence[nn.Module],
                 teacher_weights: Sequence[float],
                 student: Optional[nn.Module] = None,
                 dataset=None,
                 loss: Optional[dict] = None) -> None:
        self.teachers = list(teachers)
        self.teacher_weights = list(teacher_weights)
        self.dataset = dataset
        self.loss = InversionLoss.from_models(self.teachers, self.teacher_weights, student,
                                              **(loss or {}))

    # ---------------------------------------------------------------------------- interface
    @abstractmethod
    def next_batch(self, samples: Sequence[DetDataSample], rng: torch.Generator,
                   retry: Retry = run_once) -> SyntheticBatch:
        """The images the student trains on at this iteration, with their targets.

        Args:
            samples: The loader batch's data samples: their metainfo, and their targets if
                the dataset drew them (else :meth:`targets_of` draws them, when needed).
            rng: Random source (on the CPU) of every random draw.
            retry: Retry policy around each step that may meet non-finite values.

        Returns:
            The batch; it need not be made for ``samples``' targets (it may come from images
            finished earlier).
        """

    @abstractmethod
    def synthesize(self, targets: Targets, rng: torch.Generator) -> SyntheticBatch:
        """Images made for exactly these targets, from scratch (a stored set of images).

        Args:
            targets: The targets, one per image.
            rng: Random source (on the CPU).

        Returns:
            The images and their targets.
        """

    @abstractmethod
    def state_dict(self) -> dict:
        """What a resumed run needs to continue as this one would (tensors on any device)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`."""

    @abstractmethod
    def describe_state(self) -> str:
        """The state in words, for the log after a resume (e.g. ``'2 in the buffer, cohort at
        step 4'``)."""

    def update(self, targets: Targets, rng: torch.Generator) -> Dict[str, float]:
        """One training update of the synthesizer's own parameters on these targets.

        Only synthesizers with parameters (a generator network) learn; see
        :attr:`has_parameters`.

        Returns:
            The loss parts of the update, as floats.
        """
        raise NotImplementedError(f'{type(self).__name__} has no parameters to train.')

    @property
    def input_scales(self) -> Dict[str, float]:
        """Sizes, other than the full one, at which the teachers see the images during
        synthesis, as factors of the image size, each with a description for messages
        (e.g. ``{'The low-resolution phase (lowres_scale=0.5)': 0.5}``)."""
        return {}

    # ------------------------------------------------------------------------------ helpers
    def targets_of(self, samples: Sequence[DetDataSample]) -> Targets:
        """The targets of a loader batch: its ground truth, or, for items that carry none
        (``SyntheticDetDataset(draw_targets=False)``), the dataset's
        ``sample_targets(img_id)``, the same targets its items would carry.

        Raises:
            ValueError: If a sample has no targets and the dataset cannot draw them.
        """
        boxes, labels = [], []
        for sample in samples:
            if 'gt_instances' in sample:
                gt = sample.gt_instances
                boxes.append(get_box_tensor(gt.bboxes).float())
                labels.append(gt.labels.long())
                continue
            if not hasattr(self.dataset, 'sample_targets'):
                raise ValueError(
                    f'The data sample of image {sample.metainfo.get("img_id")} carries no '
                    f'targets and the train dataset ({type(self.dataset).__name__}) cannot '
                    'draw them: use SyntheticDetDataset as train_dataloader.dataset.')
            box, label = self.dataset.sample_targets(sample.img_id)
            boxes.append(torch.from_numpy(box).float())
            labels.append(torch.from_numpy(label).long())
        return Targets(boxes, labels, [dict(s.metainfo) for s in samples])

    def _device(self) -> torch.device:
        return next(self.teachers[0].parameters()).device


def describe_parts(parts: Dict[str, float]) -> str:
    """Loss parts as ``name=value`` pairs, for messages."""
    return ', '.join(f'{key}={value:.4g}' for key, value in parts.items())


def build_synthesizer(cfg: dict, distiller: nn.Module, dataset) -> Synthesizer:
    """Builds a synthesizer of a distiller's teachers from ``synthesizer=dict(type=...)``.

    Args:
        cfg: The synthesizer config (``type`` from ``SYNTHESIZERS``, ``loss``, ...).
        distiller: A ``DetectionDistiller`` (unwrapped from DDP): its ``teachers``,
            ``teacher_weights`` and ``student``.
        dataset: The train dataset.

    Returns:
        The synthesizer.

    Raises:
        KeyError: If ``type`` is not a registered synthesizer; the message lists them.
    """
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    # Looked up rather than SYNTHESIZERS.build: building switches to the runner's default
    # scope ('mmdet'), which this registry has no child for.
    synthesizer_class = SYNTHESIZERS.get(kind) if isinstance(kind, str) else None
    if synthesizer_class is None:
        raise KeyError(f'synthesizer type {kind!r} is not a registered synthesizer; use one of '
                       f'{", ".join(sorted(SYNTHESIZERS.module_dict))}.')
    return synthesizer_class(teachers=distiller.teachers,
                             teacher_weights=distiller.teacher_weights,
                             student=distiller.student, dataset=dataset, **cfg)
