"""A buffer of finished synthetic images that training batches are drawn from."""
from typing import List, Tuple

import torch
from torch import Tensor

from .base import Targets


class ImageBuffer:
    """The most recent finished images with their targets, oldest out first.

    Images are kept as they will be trained on: uint8 in the loader's pixel space, on the CPU
    (3 bytes a pixel), so a checkpoint stores them losslessly and compactly.

    Args:
        capacity: Most images kept.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: List[dict] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, images: Tensor, targets: Targets) -> None:
        """Adds finished images, dropping the oldest beyond the capacity.

        Args:
            images: (B, 3, H, W) uint8.
            targets: Their targets.
        """
        for image, boxes, labels, meta in zip(images.cpu(), targets.boxes, targets.labels,
                                              targets.metainfo):
            self.entries.append(dict(image=image, boxes=boxes.cpu(), labels=labels.cpu(),
                                     metainfo=meta))
        del self.entries[:max(0, len(self.entries) - self.capacity)]

    def draw(self, num: int, rng: torch.Generator) -> Tuple[List[Tensor], Targets]:
        """Draws ``num`` images uniformly, with replacement.

        Returns:
            ``(images, targets)``: per image (3, H, W) uint8, and their targets.
        """
        picks = torch.randint(len(self.entries), (num, ), generator=rng).tolist()
        entries = [self.entries[i] for i in picks]
        return ([e['image'] for e in entries],
                Targets([e['boxes'] for e in entries], [e['labels'] for e in entries],
                        [e['metainfo'] for e in entries]))

    def state_dict(self) -> List[dict]:
        """The entries: per image ``image`` (uint8), ``boxes``, ``labels`` and ``metainfo``."""
        return list(self.entries)

    def load_state_dict(self, entries: List[dict]) -> None:
        """Restores the entries of a :meth:`state_dict`."""
        self.entries = list(entries)
