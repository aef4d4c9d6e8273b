"""Helpers of the reliability tests: a small data-free config, and modules that tools/train.py
runs load through ``custom_imports`` (with :data:`IMPORT_ENV`): a hook that kills the run, a
hook that reports how the model is wrapped for distributed training, and a backbone that takes
one input size only."""
import json
import os
import os.path as osp
import signal

import timm
import torch
from mmdet.registry import HOOKS, MODELS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModule, is_model_wrapper

# Environment of a tools/train.py run whose config imports this module.
IMPORT_ENV = {'PYTHONPATH': osp.dirname(osp.abspath(__file__))}


def small_dfkd_config(data_root: str, teacher_ckpt: str, path: str, img_size: int = 64,
                      max_iters: int = 4, ckpt_interval: int = 2) -> Config:
    """The tiny data-free config (``write_tiny_dfkd_config``) made smaller still: ``img_size``
    images, 3 inversion steps per cohort (1 at half size, FP sampling from step 2) and 1 per
    iteration, so that a checkpoint holds a cohort in progress; no validation. Written to
    ``path`` and returned for further changes (dump it again after changing it)."""
    from conftest import write_tiny_dfkd_config
    cfg = Config.fromfile(write_tiny_dfkd_config(data_root, teacher_ckpt, path))
    cfg.train_dataloader.dataset.img_size = (img_size, img_size)
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.default_hooks.checkpoint.interval = ckpt_interval
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    hook = cfg.custom_hooks[0]
    hook.synthesizer.update(total_steps=3, lowres_steps=1,
                            fp_sampling=dict(start=2, interval=1, score_thr=0.5),
                            steps_per_iter=1, buffer_size=4, initial_cohorts=1)
    hook.update(vis_interval=0)
    cfg.dump(path)
    return cfg


def with_helpers(cfg: Config, hooks=()) -> Config:
    """``cfg`` importing this module too, with ``hooks`` added to its custom hooks."""
    cfg.custom_imports = dict(imports=['mmdfkd', 'reliability_helpers'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [*cfg.custom_hooks, *hooks]
    return cfg


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """Kills its own process with SIGKILL (no cleanup, as the OOM killer or a lost node would)
    before training iteration ``iteration`` (0-based) starts.

    Args:
        iteration: The iteration that never runs.
    """

    priority = 'HIGHEST'

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class DistributedReportHook(Hook):
    """Writes ``work_dir/ddp_rank{r}.json`` before training: how the model is wrapped, and
    whether the teachers are out of DDP's hands."""

    def before_train(self, runner) -> None:
        model = runner.model
        report = dict(rank=runner.rank, world_size=runner.world_size,
                      wrapper=type(model).__name__, wrapped=is_model_wrapper(model))
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            teachers = model.module.teachers
            names = [f'teachers.{n}' for n, _ in teachers.named_parameters()]
            managed = {id(p) for p in model._module_parameters}
            report.update(
                find_unused_parameters=model.find_unused_parameters,
                teacher_tensors=len(names),
                teachers_ignored=all(n in model.parameters_to_ignore for n in names),
                teacher_params_synced=sum(id(p) in managed for p in teachers.parameters()),
                teachers_frozen=not any(p.requires_grad for p in teachers.parameters()),
                student_params_synced=sum(id(p) in managed
                                          for p in model.module.student.parameters()))
        with open(osp.join(runner.work_dir, f'ddp_rank{runner.rank}.json'), 'w') as f:
            json.dump(report, f)


@MODELS.register_module()
class FixedSizeViT(BaseModule):
    """A plain timm ViT without dynamic image size, as many pretrained backbones are: it takes
    ``img_size`` x ``img_size`` inputs only. Returns its token map as one (N, C, H/16, W/16)
    level.

    Args:
        img_size: The only input size.
        embed_dim: Channels of the output map.
    """

    def __init__(self, img_size: int = 128, embed_dim: int = 64) -> None:
        super().__init__()
        self.vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0,
                                     img_size=img_size, embed_dim=embed_dim, depth=1,
                                     num_heads=2)
        self.out_channels = embed_dim

    def forward(self, x: torch.Tensor) -> tuple:
        return tuple(self.vit.forward_intermediates(x, indices=1, norm=False, output_fmt='NCHW',
                                                    intermediates_only=True))
