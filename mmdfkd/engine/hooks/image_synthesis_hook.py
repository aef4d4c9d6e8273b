"""Replace each training batch with images synthesized from the frozen teachers."""
import os
import os.path as osp
from typing import Callable, List, Optional, TypeVar

import cv2
import numpy as np
import torch
from mmdet.registry import HOOKS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import get_box_tensor
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.utils import apply_to

from mmdfkd.models.synthesis import NonFiniteSynthesisError, Synthesizer, build_synthesizer
from mmdfkd.models.utils import predict_images
from .per_rank_state import PerRankState

T = TypeVar('T')


@HOOKS.register_module()
class ImageSynthesisHook(Hook):
    """Data-free training: the student trains on images synthesized from its frozen teachers.

    The train dataloader yields targets only (``SyntheticDetDataset``); before every training
    iteration the hook replaces the batch with the images of a synthesizer
    (``synthesizer=dict(type=...)``, from ``mmdfkd.registry.SYNTHESIZERS``): optimized pixels
    (``InversionSynthesizer``, DeepInversion/DIODE, amortized over training) or a generator
    network (``GeneratorSynthesizer``, DAFL/DFAD). The images are in the same pixel space as
    real ones, so the student's data preprocessor treats both alike. The hook keeps the
    lifecycle; the synthesizer decides what the images are.

    Each rank draws from its own random stream (``rng``, seeded by ``seed`` and the rank) and
    synthesizes from its own batches, so ranks make different images. The synthesizer's state
    (:meth:`Synthesizer.state_dict`) and the random stream of every rank are saved in
    checkpoints (``checkpoint['image_synthesis']``, a list with one entry per rank) and
    restored on resume, each rank its own.

    Before training, the student is run once on an image of the train dataset's image size, so
    a size it cannot take is an error at once, not after the first synthesis. A size that the
    student's or a teacher's data preprocessor would pad (not a multiple of its
    ``pad_size_divisor``, also at the sizes the synthesizer shrinks images to, e.g. the
    low-resolution phase of inversion) is refused too: every model would see a constant border
    that the synthesis cannot shape.

    A non-finite (NaN or inf) loss, gradient or image is detected before it reaches the images
    or a network's weights: the synthesis step is taken again from new noise (for inversion, a
    new cohort for the same targets), the log says so and the count is logged as
    ``syn_nonfinite_redraws``. After ``max_nonfinite_redraws`` such redraws in a row the hook
    gives up with a ``RuntimeError``.

    Args:
        synthesizer: The synthesizer config: ``type`` (``'InversionSynthesizer'``,
            ``'GeneratorSynthesizer'``), ``loss=dict(...)`` (the :class:`InversionLoss`) and
            the type's own settings.
        seed: Base seed of the synthesis random stream; None uses the runner's seed.
        vis_interval: Every this many iterations, a grid of the batch's images with target
            boxes (green) and the first teacher's detections (red) is written to
            ``work_dir/synthetic_vis/iter_N.png`` (``iter_N_rank{r}.png`` on rank r > 0) and
            sent to the visualizer's backends. 0 turns it off. Defaults to 0.
        vis_score_thr: Score threshold of the drawn teacher detections. Defaults to 0.3.
        max_nonfinite_redraws: Most redraws in a row after non-finite values before giving
            up. Defaults to 10.
    """

    priority = 'VERY_HIGH'  # the batch must be replaced before anything reads it

    def __init__(self,
                 synthesizer: dict,
                 seed: Optional[int] = None,
                 vis_interval: int = 0,
                 vis_score_thr: float = 0.3,
                 max_nonfinite_redraws: int = 10) -> None:
        if not isinstance(synthesizer, dict) or 'type' not in synthesizer:
            raise ValueError('ImageSynthesisHook: synthesizer must be a config dict with a '
                             "type, e.g. dict(type='InversionSynthesizer', total_steps=2000), "
                             f'got {synthesizer!r}.')
        if max_nonfinite_redraws < 0:
            raise ValueError(f'max_nonfinite_redraws must be >= 0, got {max_nonfinite_redraws}.')
        self.synthesizer_cfg = dict(synthesizer)
        self.synthesizer: Optional[Synthesizer] = None
        self.seed = seed
        self.vis_interval = vis_interval
        self.vis_score_thr = vis_score_thr
        self.rng = torch.Generator()
        self.max_nonfinite_redraws = max_nonfinite_redraws
        self.nonfinite_redraws = 0  # in all, logged as syn_nonfinite_redraws
        self._nonfinite_in_a_row = 0
        self._ranks = PerRankState(type(self).__name__)
        self._resume_state: Optional[dict] = None
        self._resume_rng = True  # restore the saved random stream with the synthesizer
        self._teacher: Optional[torch.nn.Module] = None  # drawn in the visualization

    # ---------------------------------------------------------------------------- lifecycle
    def before_train(self, runner) -> None:
        distiller = self._distiller(runner)
        dataset = runner.train_dataloader.dataset
        self._check_image_size(runner, distiller)
        self.synthesizer = build_synthesizer(self.synthesizer_cfg, distiller, dataset)
        self._check_padding(runner, distiller)
        self._teacher = distiller.teachers[0]
        rank, _ = get_dist_info()
        base = self.seed if self.seed is not None else (runner.seed or 0)
        self.rng.manual_seed(int(base) * 1000 + rank)
        if self._resume_state is not None:
            self._restore(self._resume_state)
            self._resume_state = None
            runner.logger.info('Synthetic images restored: '
                               f'{self.synthesizer.describe_state()}.')

    def before_train_iter(self, runner, batch_idx: int, data_batch: dict = None) -> None:
        batch = self.synthesizer.next_batch(
            data_batch['data_samples'], self.rng,
            retry=lambda attempt, redraw: self._redraw_if_nonfinite(runner, attempt, redraw))
        for key, value in batch.log.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        data_batch['inputs'] = batch.images
        data_batch['data_samples'] = batch.targets.data_samples()
        runner.message_hub.update_scalar('train/syn_nonfinite_redraws', self.nonfinite_redraws)
        if self.vis_interval and (runner.iter + 1) % self.vis_interval == 0:
            self._visualize(runner, data_batch['inputs'], data_batch['data_samples'])

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._ranks.gather_if_saving(runner, self._state)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['image_synthesis'] = self._ranks.to_save(runner, self._state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Called by resume, before before_train builds the synthesizer.
        states = checkpoint.get('image_synthesis')
        if states is None:
            runner.logger.warning(
                'The checkpoint holds no synthesis state (it was written without '
                'ImageSynthesisHook): synthesis starts afresh, from its warm-up.')
            return
        self._resume_state = self._ranks.pick(runner, states)
        # Another number of ranks: keep the images, but let the rank's own seed drive its
        # random stream, so that ranks sharing a saved state still draw differently.
        self._resume_rng = len(states) == get_dist_info()[1]

    # ------------------------------------------------------------------------------ helpers
    def _state(self) -> dict:
        """This rank's synthesis state, as checkpoints store it (tensors on the CPU)."""
        state = dict(type=type(self.synthesizer).__name__,
                     synthesizer=self.synthesizer.state_dict(), rng=self.rng.get_state(),
                     nonfinite_redraws=self.nonfinite_redraws)
        return apply_to(state, lambda x: isinstance(x, torch.Tensor), lambda x: x.cpu())

    def _restore(self, state: dict) -> None:
        kind = type(self.synthesizer).__name__
        if state['type'] != kind:
            raise ValueError(
                f'The checkpoint holds the state of a {state["type"]}, the config synthesizes '
                f'with a {kind}: resume with the config that wrote the checkpoint, or start a '
                'new run from its weights (load_from) without --resume.')
        self.synthesizer.load_state_dict(state['synthesizer'])
        self.nonfinite_redraws = state['nonfinite_redraws']
        if self._resume_rng:
            self.rng.set_state(state['rng'])

    @staticmethod
    def _check_image_size(runner, distiller) -> None:
        """Runs the student once on a zero image of the train items' size and turns a
        failure into an error that names the size to change."""
        meta = runner.train_dataloader.dataset[0]['data_samples'].metainfo
        height, width = meta['img_shape'][:2]
        data = distiller.data_preprocessor(
            dict(inputs=[torch.zeros((3, height, width), dtype=torch.uint8)],
                 data_samples=[DetDataSample(metainfo=meta)]), False)
        student = distiller.student
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                student._forward(data['inputs'], data['data_samples'])
        except Exception as exc:
            raise ValueError(
                f'The student ({type(student).__name__} with a '
                f'{type(getattr(student, "backbone", student)).__name__} backbone) cannot take '
                f'the synthetic images of {height}x{width} pixels '
                f'(train_dataloader.dataset.img_size): {type(exc).__name__}: '
                f'{str(exc).rstrip(".")}. Set img_size to a size the student takes (for a '
                'fixed-size backbone, its input size), e.g. --cfg-options '
                '"train_dataloader.dataset.img_size=(H, W)", or use a backbone that takes any '
                'size (TimmViT).') from exc
        finally:
            student.train(was_training)

    def _check_padding(self, runner, distiller) -> None:
        """Rejects synthetic image sizes that the models' data preprocessors would pad.

        Each preprocessor pads its input to a multiple of its ``pad_size_divisor``. An image of
        another size reaches every model with a constant border: the teachers are inverted on
        it, the BN-statistics prior is matched over it and the student learns on it, at the
        cost of the padded size. The same holds for the smaller sizes the synthesizer shows
        the teachers (:attr:`Synthesizer.input_scales`, e.g. inversion's low-resolution phase).

        Raises:
            ValueError: Naming the size, the divisor and sizes that fit.
        """
        preprocessors = [distiller.data_preprocessor] + [t.data_preprocessor
                                                         for t in distiller.teachers]
        divisor = max(int(getattr(p, 'pad_size_divisor', 1)) for p in preprocessors)
        scales = self.synthesizer.input_scales

        def fits(side: int, factors=(1, *scales.values())) -> bool:
            return all(round(side * factor) % divisor == 0 for factor in factors)

        height, width = runner.train_dataloader.dataset[0]['data_samples'].img_shape[:2]
        if fits(height) and fits(width):
            return
        phase, (h, w) = 'The synthetic images', (height, width)
        if fits(height, (1, )) and fits(width, (1, )):  # only a smaller size is padded
            phase, scale = next((name, scale) for name, scale in scales.items()
                                if not (fits(height, (scale, )) and fits(width, (scale, ))))
            h, w = round(height * scale), round(width * scale)
        padded_h, padded_w = -(-h // divisor) * divisor, -(-w // divisor) * divisor
        border = 1 - h * w / (padded_h * padded_w)
        # The smallest side that fits; its multiples fit too.
        step = next((k * divisor for k in range(1, 65) if fits(k * divisor)), divisor)
        sizes = sorted({tuple(max(step, side // step * step) for side in (height, width)),
                        tuple(-(-side // step) * step for side in (height, width))})
        raise ValueError(
            f'{phase} of {h}x{w} pixels (train_dataloader.dataset.img_size is {height}x'
            f'{width}) would be padded to {padded_h}x{padded_w} by the data preprocessors of '
            f'the student and teachers (pad_size_divisor {divisor}): {border:.0%} of what the '
            'models see would be a constant border. The teachers would be inverted on it, the '
            'BN-statistics prior matched over it and the student trained on it, at the cost of '
            f'the padded size. Use sides that are multiples of {step}'
            + (f' (so that {" and ".join(n[0].lower() + n[1:] for n in scales)} '
               f'{"is a multiple" if len(scales) == 1 else "are multiples"} of {divisor} too)'
               if step != divisor else '')
            + ', e.g. --cfg-options "train_dataloader.dataset.img_size='
            + '" or "train_dataloader.dataset.img_size='.join(str(size) for size in sizes)
            + '".')

    @staticmethod
    def _distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'teachers'):
            raise TypeError(f'ImageSynthesisHook needs a model with teachers (a '
                            f'DetectionDistiller), got {type(model).__name__}. Set '
                            "model.type='DetectionDistiller' or remove the hook.")
        return model

    def _redraw_if_nonfinite(self, runner, attempt: Callable[[], T],
                             redraw: Optional[Callable[[], None]] = None) -> T:
        """Runs ``attempt`` until it raises no :class:`NonFiniteSynthesisError` (the retry
        policy the synthesizer is given).

        Args:
            runner: The runner (for the log).
            attempt: A synthesis step; it raises before non-finite values reach the images or
                a network's weights.
            redraw: Called before each retry (e.g. a new cohort); None if a retry draws new
                noise by itself.

        Returns:
            What ``attempt`` returned.

        Raises:
            RuntimeError: After ``max_nonfinite_redraws`` redraws in a row.
        """
        while True:
            try:
                result = attempt()
            except NonFiniteSynthesisError as exc:
                self._nonfinite_in_a_row += 1
                if self._nonfinite_in_a_row > self.max_nonfinite_redraws:
                    raise RuntimeError(
                        f'Synthesis gave non-finite values {self._nonfinite_in_a_row} times in '
                        f'a row (last: {exc}); giving up. Lower the synthesis learning rate '
                        '(synthesizer.lr, or synthesizer.optim_wrapper\'s lr for a generator '
                        'network) and the loss weights (synthesizer.loss), and check that the '
                        'teacher checkpoint holds finite weights.') from exc
                self.nonfinite_redraws += 1
                runner.logger.warning(
                    f'Synthesis: {exc}. The batch is drawn again from new noise '
                    f'({self._nonfinite_in_a_row} in a row, {self.nonfinite_redraws} in all).')
                if redraw is not None:
                    redraw()
                continue
            self._nonfinite_in_a_row = 0
            return result

    def _visualize(self, runner, inputs: List[torch.Tensor],
                   samples: List[DetDataSample]) -> None:
        teacher = self._teacher
        batch = torch.stack(inputs).float().to(next(teacher.parameters()).device)
        detections = predict_images(teacher, batch, [s.metainfo for s in samples])
        tiles = []
        for image, sample, dets in zip(inputs, samples, detections):
            tile = np.ascontiguousarray(image.permute(1, 2, 0).numpy())  # BGR uint8
            for box in get_box_tensor(sample.gt_instances.bboxes).tolist():
                x1, y1, x2, y2 = map(int, box)
                cv2.rectangle(tile, (x1, y1), (x2, y2), (0, 255, 0), 1)
            for box in dets.bboxes[dets.scores >= self.vis_score_thr].tolist():
                x1, y1, x2, y2 = map(int, box)
                cv2.rectangle(tile, (x1, y1), (x2, y2), (0, 0, 255), 1)
            tiles.append(tile)
        columns = min(4, len(tiles))
        while len(tiles) % columns:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.concatenate(tiles[r:r + columns], axis=1)
                for r in range(0, len(tiles), columns)]
        grid = np.concatenate(rows, axis=0)
        out_dir = osp.join(runner.work_dir, 'synthetic_vis')
        os.makedirs(out_dir, exist_ok=True)
        rank = get_dist_info()[0]
        name = f'iter_{runner.iter + 1}' + (f'_rank{rank}' if rank else '')
        cv2.imwrite(osp.join(out_dir, f'{name}.png'), grid)
        runner.visualizer.add_image('synthetic_images', grid[..., ::-1].copy(),
                                    step=runner.iter + 1)
