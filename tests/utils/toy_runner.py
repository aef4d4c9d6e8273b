"""A real mmengine Runner on a one-layer model, for a few CPU iterations: its checkpoints hold
what every Runner checkpoint holds (numpy arrays in ``HistoryBuffer`` objects of the message hub,
optimizer and scheduler state)."""
from typing import Optional

import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset


class ToyModel(BaseModel):
    """``y = w x + b`` fitted to 1 with a squared loss, from ``w = b = 0``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        out = self.linear(inputs)
        return dict(loss=(out - 1).pow(2).mean()) if mode == 'loss' else out


class ToyDataset(Dataset):
    """Eight inputs ``(i, i)``, i = 0..7."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.full((2, ), float(index)))


def toy_runner(work_dir: str, name: str, max_iters: int, checkpoint_hook: dict,
               resume_from: Optional[str] = None) -> Runner:
    """A Runner that trains :class:`ToyModel` for ``max_iters`` iterations (batch size 2).

    Args:
        work_dir: The run's work dir.
        name: The experiment name, unique per Runner of a process.
        max_iters: Iterations to train.
        checkpoint_hook: Arguments of its ``CheckpointHook`` (``by_epoch=False``).
        resume_from: A checkpoint to resume from, if any.
    """
    return Runner(
        model=ToyModel(), work_dir=work_dir, experiment_name=name,
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           **checkpoint_hook),
                           logger=dict(type='LoggerHook', interval=1)),
        resume=resume_from is not None, load_from=resume_from,
        randomness=dict(seed=0),
        # The scope the other tests of the session build mmdet modules in (the newest Runner's
        # scope becomes the current one).
        default_scope='mmdet')
