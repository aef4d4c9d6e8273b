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
from mmengine.dataset import pseudo_collate
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.structures import InstanceData
from mmengine.utils import apply_to

from mmdfkd.models.distillers.normalization import normalize_like
from mmdfkd.models.synthesis.detector_inverter import (Cohort, DetectorInverter,
                                                      NonFiniteSynthesisError)
from mmdfkd.models.synthesis.generator_training import (DEFAULT_GENERATOR_OPTIM_WRAPPER,
                                                       build_generator, generate_images,
                                                       generator_step)

from .per_rank_state import PerRankState

T = TypeVar('T')


@HOOKS.register_module()
class SyntheticImageGeneratorHook(Hook):
    """Data-free training: trains the student on images inverted from its frozen teachers.

    The train dataloader yields targets only (``SyntheticDetDataset``). Images are synthesized
    by :class:`DetectorInverter` in cohorts of one batch: every training iteration the current
    cohort gets ``steps_per_iter`` refinement steps; once it has had all its
    ``inversion['total_steps']`` steps it joins a buffer of finished images (at most
    ``buffer_size``, oldest out first) and the batch's own targets start the next cohort. The
    batch handed to the student is drawn from that buffer, with its targets (including those
    added by false-positive sampling), in the same pixel space as real images, so the student's
    data preprocessor treats both alike. Synthesis cost is so amortized: the student trains
    while new images are refined. Before the first iteration ``initial_cohorts`` cohorts are
    synthesized so the buffer is not a single batch.

    With ``mode='generator'`` (DAFL/DFAD) a convolutional generator network
    (``BoxConditionedGenerator``: noise and the batch's box layout in, image out) makes each
    batch instead. Before the batch is drawn it takes ``generator_steps`` steps of its own
    optimizer wrapper (``generator_optim_wrapper``) on the same inversion loss, so the
    competition term (``adi_weight``) makes it adversarial to the student.

    Each rank draws from its own random stream (seeded by ``seed`` and the rank), and
    synthesizes from its own batches, so ranks make different images. The buffer, the cohort
    in progress, the generator network and its optimizer, and the random stream of every rank
    are saved in checkpoints (``checkpoint['synthetic_images']``, a list with one entry per
    rank) and restored on resume, each rank its own.

    Before training, the student is run once on a batch of the train dataset's image size, so
    a size it cannot take is an error at once, not after the first synthesis. A size that the
    student's or a teacher's data preprocessor would pad (not a multiple of its
    ``pad_size_divisor``, also in the low-resolution phase) is refused too: every model would
    see a constant border that the synthesis cannot shape.

    A non-finite (NaN or inf) inversion loss, gradient or generated image is detected before it
    reaches the images or the generator's weights: the batch is drawn again from new noise (a
    new cohort for the same targets, or new generator noise), the log says so and the count is
    logged as ``syn_nonfinite_redraws``. After ``max_nonfinite_redraws`` such redraws in a row
    the hook gives up with a ``RuntimeError``.

    Args:
        inversion: Arguments of :class:`DetectorInverter` (``total_steps``, loss weights,
            ``augment``, ``lowres_steps``, ``fp_sampling``, ...). ``total_steps`` is needed
            in inversion mode.
        mode: ``'inversion'`` (optimized pixels) or ``'generator'`` (a generator network).
            Defaults to ``'inversion'``.
        generator: Generator network config (type ``BoxConditionedGenerator`` by default);
            ``num_classes`` and ``img_size`` default to the train dataset's.
        generator_optim_wrapper: mmengine optim wrapper config of the generator. Defaults to
            Adam, lr 1e-3, betas (0.5, 0.999).
        generator_steps: Generator updates per training iteration. Defaults to 1.
        steps_per_iter: Refinement steps per training iteration. Defaults to 10.
        buffer_size: Most finished images kept. Defaults to 64.
        initial_cohorts: Cohorts synthesized before training starts. Defaults to 1.
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
                 inversion: dict,
                 mode: str = 'inversion',
                 generator: Optional[dict] = None,
                 generator_optim_wrapper: Optional[dict] = None,
                 generator_steps: int = 1,
                 steps_per_iter: int = 10,
                 buffer_size: int = 64,
                 initial_cohorts: int = 1,
                 seed: Optional[int] = None,
                 vis_interval: int = 0,
                 vis_score_thr: float = 0.3,
                 max_nonfinite_redraws: int = 10) -> None:
        if mode not in ('inversion', 'generator'):
            raise ValueError(f"mode must be 'inversion' or 'generator', got {mode!r}.")
        inversion = dict(inversion)
        if mode == 'generator':
            inversion.setdefault('total_steps', 1)  # unused: the network makes the images
        elif 'total_steps' not in inversion:
            raise ValueError('SyntheticImageGeneratorHook: inversion needs total_steps, the '
                             'refinement steps each image gets.')
        if generator_steps < 1:
            raise ValueError(f'generator_steps must be >= 1, got {generator_steps}.')
        if steps_per_iter < 1 or buffer_size < 1 or initial_cohorts < 1:
            raise ValueError('steps_per_iter, buffer_size and initial_cohorts must be >= 1, got '
                             f'{steps_per_iter}, {buffer_size}, {initial_cohorts}.')
        if max_nonfinite_redraws < 0:
            raise ValueError(f'max_nonfinite_redraws must be >= 0, got {max_nonfinite_redraws}.')
        self.inversion_cfg = inversion
        self.mode = mode
        self.generator_cfg = dict(dict(type='BoxConditionedGenerator'), **(generator or {}))
        self.generator_optim_cfg = generator_optim_wrapper or DEFAULT_GENERATOR_OPTIM_WRAPPER
        self.generator_steps = generator_steps
        self.image_generator: Optional[torch.nn.Module] = None
        self.generator_optim = None
        self.steps_per_iter = steps_per_iter
        self.buffer_size = buffer_size
        self.initial_cohorts = initial_cohorts
        self.seed = seed
        self.vis_interval = vis_interval
        self.vis_score_thr = vis_score_thr
        self.inverter: Optional[DetectorInverter] = None
        self.cohort = None
        self.buffer: List[dict] = []
        self.rng = torch.Generator()
        self.max_nonfinite_redraws = max_nonfinite_redraws
        self.nonfinite_redraws = 0  # in all, logged as syn_nonfinite_redraws
        self._nonfinite_in_a_row = 0
        self._ranks = PerRankState(type(self).__name__)
        self._resume_state: Optional[dict] = None
        self._resume_rng = True  # restore the saved random stream with the images
        self._warmed_up = False  # initial cohorts synthesized (or restored from a checkpoint)

    # ---------------------------------------------------------------------------- lifecycle
    def before_train(self, runner) -> None:
        distiller = self._distiller(runner)
        self._check_image_size(runner, distiller)
        self.inverter = DetectorInverter.from_distiller(distiller, **self.inversion_cfg)
        self._check_padding(runner, distiller)
        if self.mode == 'generator':
            self.image_generator, self.generator_optim = build_generator(
                self.generator_cfg, self.generator_optim_cfg, runner.train_dataloader.dataset,
                next(distiller.teachers[0].parameters()).device)
        rank, _ = get_dist_info()
        base = self.seed if self.seed is not None else (runner.seed or 0)
        self.rng.manual_seed(int(base) * 1000 + rank)
        if self._resume_state is not None:
            self._restore(self._resume_state)
            self._resume_state = None
            runner.logger.info(f'Synthetic images restored: {len(self.buffer)} in the buffer, '
                               f'cohort at step {self.cohort.age if self.cohort else 0}'
                               + (', generator network and optimizer' if self.image_generator
                                  is not None else '') + '.')

    def before_train_iter(self, runner, batch_idx: int, data_batch: dict = None) -> None:
        if self.mode == 'generator':
            self._generator_batch(runner, data_batch)
        else:
            self._inversion_batch(runner, data_batch)
        runner.message_hub.update_scalar('train/syn_nonfinite_redraws', self.nonfinite_redraws)
        if self.vis_interval and (runner.iter + 1) % self.vis_interval == 0:
            self._visualize(runner, data_batch['inputs'], data_batch['data_samples'])

    def _inversion_batch(self, runner, data_batch: dict) -> None:
        """Advances the cohort in refinement, then draws the batch from the finished
        images."""
        samples = data_batch['data_samples']
        if self.cohort is None:
            self.cohort = self._start(samples)
        if not self._warmed_up:
            target = min(self.initial_cohorts * len(samples), self.buffer_size)
            while len(self.buffer) < target:
                self._refine(runner, self.inverter.total_steps)
                self._finish_if_done(samples)
            self._warmed_up = True
        self._refine(runner, self.steps_per_iter)
        self._finish_if_done(samples)

        picks = torch.randint(len(self.buffer), (len(samples), ), generator=self.rng)
        inputs, new_samples = [], []
        for i in picks.tolist():
            entry = self.buffer[i]
            sample = DetDataSample(metainfo=entry['metainfo'])
            sample.gt_instances = InstanceData(bboxes=entry['boxes'].clone(),
                                               labels=entry['labels'].clone())
            sample.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                                    labels=torch.zeros(0, dtype=torch.long))
            inputs.append(entry['image'])
            new_samples.append(sample)
        data_batch['inputs'] = inputs
        data_batch['data_samples'] = new_samples

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._ranks.gather_if_saving(runner, self._state)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['synthetic_images'] = self._ranks.to_save(runner, self._state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Called by resume, before before_train builds the inverter.
        states = checkpoint.get('synthetic_images')
        if isinstance(states, dict):  # written before states were kept per rank
            states = [states]
        if states is not None:
            self._resume_state = self._ranks.pick(runner, states)
            # Another number of ranks: keep the images, but let the rank's own seed drive its
            # random stream, so that ranks sharing a saved state still draw differently.
            self._resume_rng = len(states) == get_dist_info()[1]

    # ------------------------------------------------------------------------------ helpers
    def _state(self) -> dict:
        """This rank's synthesis state, as checkpoints store it (tensors on the CPU)."""
        cohort = None
        if self.cohort is not None:
            cohort = dict(pixels=self.cohort.pixels.detach().cpu(),
                          optimizer=self.cohort.optimizer.state_dict(),
                          boxes=[b.cpu() for b in self.cohort.boxes],
                          labels=[lb.cpu() for lb in self.cohort.labels],
                          metainfo=self.cohort.metainfo, full_hw=list(self.cohort.full_hw),
                          age=self.cohort.age)
        network = None
        if self.image_generator is not None:
            network = dict(state_dict=self.image_generator.state_dict(),
                           optim_wrapper=self.generator_optim.state_dict())
        state = dict(buffer=self.buffer, cohort=cohort, rng=self.rng.get_state(),
                     network=network, nonfinite_redraws=self.nonfinite_redraws)
        return apply_to(state, lambda x: isinstance(x, torch.Tensor), lambda x: x.cpu())

    @staticmethod
    def _check_image_size(runner, distiller) -> None:
        """Runs the student once on a batch of one train item (its placeholder image has the
        synthetic size) and turns a failure into an error that names the size to change."""
        data = distiller.data_preprocessor(pseudo_collate([runner.train_dataloader.dataset[0]]),
                                           False)
        student = distiller.student
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                student._forward(data['inputs'], data['data_samples'])
        except Exception as exc:
            height, width = data['data_samples'][0].img_shape[:2]
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
        cost of the padded size. The same holds for the low-resolution phase of inversion.

        Raises:
            ValueError: Naming the size, the divisor and sizes that fit.
        """
        preprocessors = [distiller.data_preprocessor] + [t.data_preprocessor
                                                         for t in distiller.teachers]
        divisor = max(int(getattr(p, 'pad_size_divisor', 1)) for p in preprocessors)
        scale = self.inverter.lowres_scale if self.inverter.lowres_steps else None

        def fits(side: int) -> bool:
            return side % divisor == 0 and (scale is None or round(side * scale) % divisor == 0)

        height, width = runner.train_dataloader.dataset[0]['data_samples'].img_shape[:2]
        if fits(height) and fits(width):
            return
        phase, (h, w) = 'The synthetic images', (height, width)
        if height % divisor == 0 and width % divisor == 0:  # only the low-resolution phase
            phase, (h, w) = f'The low-resolution phase (lowres_scale={scale})', (
                round(height * scale), round(width * scale))
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
            + (f' (so that the low-resolution phase is a multiple of {divisor} too)'
               if step != divisor else '')
            + ', e.g. --cfg-options "train_dataloader.dataset.img_size='
            + '" or "train_dataloader.dataset.img_size='.join(str(size) for size in sizes)
            + '".')

    @staticmethod
    def _distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'teachers'):
            raise TypeError(f'SyntheticImageGeneratorHook needs a model with teachers (a '
                            f'DetectionDistiller), got {type(model).__name__}. Set '
                            "model.type='DetectionDistiller' or remove the hook.")
        return model

    @staticmethod
    def _targets(samples: List[DetDataSample]):
        """The batch's target boxes, labels, metainfo and image size."""
        boxes, labels, metainfo = [], [], []
        for sample in samples:
            gt = sample.gt_instances
            box = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
            boxes.append(box.float())
            labels.append(gt.labels.long())
            metainfo.append(dict(sample.metainfo))
        return boxes, labels, metainfo, tuple(samples[0].metainfo['img_shape'][:2])

    def _start(self, samples: List[DetDataSample]):
        boxes, labels, metainfo, shape = self._targets(samples)
        return self.inverter.start(boxes, labels, metainfo, shape, self.rng)

    def _generator_batch(self, runner, data_batch: dict) -> None:
        """Updates the generator network on the batch's targets, then lets it draw the
        batch."""
        boxes, labels, metainfo, shape = self._targets(data_batch['data_samples'])
        device = next(self.image_generator.parameters()).device
        boxes = [b.to(device) for b in boxes]
        labels = [lb.to(device) for lb in labels]
        self.image_generator.train()
        for _ in range(self.generator_steps):
            # A retry draws new noise: the random stream has moved on.
            log = self._redraw_if_nonfinite(runner, lambda: generator_step(
                self.image_generator, self.generator_optim, self.inverter, boxes, labels,
                metainfo, shape, self.rng))
        for key, value in log.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        images = self._redraw_if_nonfinite(
            runner, lambda: generate_images(self.image_generator, boxes, labels, self.rng))
        data_batch['inputs'] = list(images.to(torch.uint8).cpu())

    def _refine(self, runner, steps: int) -> None:
        log = self._redraw_if_nonfinite(
            runner, lambda: self.inverter.refine(self.cohort, steps, self.rng),
            redraw=self._restart_cohort)
        for key, value in log.items():
            runner.message_hub.update_scalar(f'train/{key}', value)

    def _restart_cohort(self) -> None:
        """A new cohort from new noise, for the targets of the current one."""
        cohort = self.cohort
        self.cohort = self.inverter.start(cohort.boxes, cohort.labels, cohort.metainfo,
                                          cohort.full_hw, self.rng)

    def _redraw_if_nonfinite(self, runner, attempt: Callable[[], T],
                             redraw: Optional[Callable[[], None]] = None) -> T:
        """Runs ``attempt`` until it raises no :class:`NonFiniteSynthesisError`.

        Args:
            runner: The runner (for the log).
            attempt: A synthesis step; it raises before non-finite values reach the images or
                the generator's weights.
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
                        '(inversion.lr, or generator_optim_wrapper\'s lr in generator mode) '
                        'and the inversion loss weights, and check that the teacher '
                        'checkpoint holds finite weights.') from exc
                self.nonfinite_redraws += 1
                runner.logger.warning(
                    f'Synthesis: {exc}. The batch is drawn again from new noise '
                    f'({self._nonfinite_in_a_row} in a row, {self.nonfinite_redraws} in all).')
                if redraw is not None:
                    redraw()
                continue
            self._nonfinite_in_a_row = 0
            return result

    def _finish_if_done(self, samples: List[DetDataSample]) -> None:
        if not self.inverter.finished(self.cohort):
            return
        images = self.inverter.images(self.cohort).to(torch.uint8).cpu()
        for i in range(len(images)):
            self.buffer.append(dict(image=images[i], boxes=self.cohort.boxes[i].cpu(),
                                    labels=self.cohort.labels[i].cpu(),
                                    metainfo=self.cohort.metainfo[i]))
        del self.buffer[:max(0, len(self.buffer) - self.buffer_size)]
        self.cohort = self._start(samples)

    def _restore(self, state: dict) -> None:
        self.buffer = state['buffer']
        self.nonfinite_redraws = state.get('nonfinite_redraws', 0)
        if state.get('network') is not None and self.image_generator is not None:
            self.image_generator.load_state_dict(state['network']['state_dict'])
            self.generator_optim.load_state_dict(state['network']['optim_wrapper'])
        self._warmed_up = True  # the buffer is as it was: warm-up is not repeated
        cohort = state.get('cohort')
        if cohort is not None:
            self.cohort = self._restored_cohort(cohort)
        # Last: rebuilding the cohort draws (discarded) noise from the stream.
        if self._resume_rng:
            self.rng.set_state(state['rng'])

    def _restored_cohort(self, cohort: dict) -> Cohort:
        """The cohort in progress from its checkpoint entry, with its optimizer state."""
        device = next(self.inverter.teachers[0].parameters()).device
        restored = self.inverter.start(cohort['boxes'], cohort['labels'], cohort['metainfo'],
                                       tuple(cohort['full_hw']), self.rng)
        with torch.no_grad():
            restored.pixels = cohort['pixels'].to(device).requires_grad_(True)
        restored.optimizer = torch.optim.Adam([restored.pixels], lr=self.inverter.lr,
                                              betas=self.inverter.betas)
        restored.optimizer.load_state_dict(cohort['optimizer'])
        restored.age = cohort['age']
        return restored

    @torch.no_grad()
    def _visualize(self, runner, inputs: List[torch.Tensor],
                   samples: List[DetDataSample]) -> None:
        teacher = self.inverter.teachers[0]
        batch = torch.stack(inputs).float().to(next(teacher.parameters()).device)
        teacher_inputs = normalize_like(batch, teacher.data_preprocessor)
        query = [DetDataSample(metainfo=dict(s.metainfo, batch_input_shape=tuple(
            teacher_inputs.shape[-2:]))) for s in samples]
        detections = teacher.predict(teacher_inputs, query, rescale=False)
        tiles = []
        for image, sample, result in zip(inputs, samples, detections):
            tile = np.ascontiguousarray(image.permute(1, 2, 0).numpy())  # BGR uint8
            for box in get_box_tensor(sample.gt_instances.bboxes).tolist():
                x1, y1, x2, y2 = map(int, box)
                cv2.rectangle(tile, (x1, y1), (x2, y2), (0, 255, 0), 1)
            dets = result.pred_instances
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
