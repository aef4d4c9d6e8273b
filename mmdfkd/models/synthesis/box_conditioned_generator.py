"""A box-conditioned image generator (DAFL/DFAD style) for data-free synthesis: noise and a
box layout in, an image whose objects can be placed where the boxes are out."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

# Channels never shrink below this: thinner maps make the last stages too weak to paint.
MIN_CHANNELS = 16


def _check_positive_int(name: str, value) -> None:
    # bool is an int subclass; True as a size is a config mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'{name} must be a positive int, got {value!r}')


@MODELS.register_module()
class BoxConditionedGenerator(nn.Module):
    """DAFL-like generator conditioned on a per-class box layout.

    The noise is projected by a linear layer to a ``base_channels`` x ``H / 2**u`` x
    ``W / 2**u`` map (``u = num_upsamples``), batch-normalised as in DAFL, and concatenated
    with the layout map (:meth:`rasterize`) at that resolution. Then ``u`` blocks of
    [nearest upsample x2, concat the layout map at the new resolution, conv3x3, BatchNorm2d,
    LeakyReLU(0.2)] each halve the channels (not below 16), and a final conv3x3 to 3 channels
    with a sigmoid gives an image in [0, 1]. The layout enters at every scale so that the
    generator can put objects of class ``c`` inside the boxes of class ``c``.

    The projection holds ``noise_dim * base_channels * H * W / 4**u`` weights (8.4M for the
    defaults), which is why the channel count at the coarsest scale is ``base_channels``
    rather than growing with ``u``.

    Args:
        num_classes: Number of object classes, i.e. layout channels.
        img_size: Output size ``(H, W)`` in pixels; both divisible by ``2**num_upsamples``.
            Boxes are given in these pixel coordinates. Defaults to ``(256, 256)``.
        noise_dim: Length of the noise vector. Defaults to 128.
        base_channels: Channels of the projected noise map; each upsampling block halves
            them, not below 16. Defaults to 64.
        num_upsamples: Number of x2 upsampling blocks. Defaults to 3.

    Raises:
        ValueError: If an argument is not a positive int, ``img_size`` is not a pair, or
            ``H`` or ``W`` is not divisible by ``2**num_upsamples``.
    """

    def __init__(self,
                 num_classes: int,
                 img_size: Tuple[int, int] = (256, 256),
                 noise_dim: int = 128,
                 base_channels: int = 64,
                 num_upsamples: int = 3) -> None:
        super().__init__()
        _check_positive_int('num_classes', num_classes)
        _check_positive_int('noise_dim', noise_dim)
        _check_positive_int('base_channels', base_channels)
        _check_positive_int('num_upsamples', num_upsamples)
        if not isinstance(img_size, Sequence) or len(img_size) != 2:
            raise ValueError(f'img_size must be a pair (H, W), got {img_size!r}')
        for name, side in zip(('img_size[0] (H)', 'img_size[1] (W)'), img_size):
            _check_positive_int(name, side)
        factor = 2**num_upsamples
        if img_size[0] % factor or img_size[1] % factor:
            raise ValueError(f'img_size {tuple(img_size)} must have H and W divisible by '
                             f'2**num_upsamples = {factor}; change img_size or num_upsamples')

        self.num_classes = num_classes
        self.img_size = (img_size[0], img_size[1])
        self.noise_dim = noise_dim
        self.num_upsamples = num_upsamples
        self.init_size = (img_size[0] // factor, img_size[1] // factor)

        self.base_channels = base_channels
        self.project = nn.Linear(noise_dim, base_channels * self.init_size[0] * self.init_size[1])
        self.project_norm = nn.BatchNorm2d(base_channels)

        blocks = []
        # The first block also sees the layout concatenated at the coarsest scale.
        in_channels = base_channels + num_classes
        channels = base_channels
        for _ in range(num_upsamples):
            out_channels = max(channels // 2, MIN_CHANNELS)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels + num_classes, out_channels, 3, padding=1),
                    nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True)))
            in_channels = channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def rasterize(self, boxes: List[Tensor], labels: List[Tensor],
                  size: Tuple[int, int]) -> Tensor:
        """Draws the boxes as a per-class binary layout map at a given resolution.

        Boxes are scaled from ``img_size`` to ``size`` and clipped to the image; a cell is 1
        in channel ``c`` when a box of class ``c`` overlaps it. Each box covers at least one
        cell, so small boxes do not vanish at coarse scales.

        Args:
            boxes: N tensors of shape (K_i, 4), ``x1, y1, x2, y2`` in pixels of ``img_size``.
            labels: N tensors of shape (K_i,), integer classes in ``[0, num_classes)``.
            size: ``(h, w)`` of the map.

        Returns:
            Tensor of shape (N, num_classes, h, w), values 0 or 1, on the module's device.

        Raises:
            ValueError: If the lists differ in length, a tensor has the wrong shape, or a
                label is outside ``[0, num_classes)``.
        """
        if len(boxes) != len(labels):
            raise ValueError(f'boxes and labels must have one entry per image, got '
                             f'{len(boxes)} and {len(labels)}')
        h, w = size
        device = self.project.weight.device
        layout = torch.zeros(len(boxes), self.num_classes, h, w, device=device)
        scale = torch.tensor([w / self.img_size[1], h / self.img_size[0]] * 2, device=device)
        limit = torch.tensor([w, h] * 2, device=device)
        rows = torch.arange(h, device=device)
        cols = torch.arange(w, device=device)
        for i, (img_boxes, img_labels) in enumerate(zip(boxes, labels)):
            if img_boxes.dim() != 2 or img_boxes.shape[1] != 4:
                raise ValueError(f'boxes[{i}] must have shape (K, 4), got '
                                 f'{tuple(img_boxes.shape)}')
            if img_labels.shape != img_boxes.shape[:1]:
                raise ValueError(f'labels[{i}] must have shape ({img_boxes.shape[0]},) to '
                                 f'match boxes[{i}], got {tuple(img_labels.shape)}')
            if img_boxes.numel() == 0:
                continue
            img_labels = img_labels.to(device=device, dtype=torch.long)
            if img_labels.min() < 0 or img_labels.max() >= self.num_classes:
                raise ValueError(f'labels[{i}] must lie in [0, {self.num_classes}), got '
                                 f'{img_labels.tolist()}')
            scaled = img_boxes.to(device=device, dtype=torch.float32) * scale
            scaled = torch.minimum(scaled.clamp(min=0), limit)
            # Cells touched by the box: [floor(x1), ceil(x2)), widened to one cell and kept
            # inside the map for boxes thinner than a cell or lying on the far edge.
            start = scaled[:, :2].floor().long()
            start = torch.minimum(start, limit[:2].long() - 1)
            end = torch.maximum(scaled[:, 2:].ceil().long(), start + 1)
            in_cols = (cols >= start[:, :1]) & (cols < end[:, :1])  # (K, w)
            in_rows = (rows >= start[:, 1:]) & (rows < end[:, 1:])  # (K, h)
            masks = (in_rows[:, :, None] & in_cols[:, None, :]).float()  # (K, h, w)
            one_hot = F.one_hot(img_labels, self.num_classes).float()  # (K, C)
            layout[i] = torch.einsum('kc,khw->chw', one_hot, masks).clamp(max=1)
        return layout

    def forward(self, noise: Tensor, boxes: List[Tensor], labels: List[Tensor]) -> Tensor:
        """Generates images whose layout follows the boxes.

        Args:
            noise: Tensor of shape (N, noise_dim).
            boxes: N tensors of shape (K_i, 4), ``x1, y1, x2, y2`` in pixels of ``img_size``.
            labels: N tensors of shape (K_i,), classes in ``[0, num_classes)``.

        Returns:
            Images of shape (N, 3, H, W) with values in [0, 1].

        Raises:
            ValueError: If ``noise`` is not (N, noise_dim) or ``boxes``/``labels`` do not
                have N entries (see also :meth:`rasterize`).
        """
        if noise.dim() != 2 or noise.shape[1] != self.noise_dim:
            raise ValueError(f'noise must have shape (N, {self.noise_dim}), got '
                             f'{tuple(noise.shape)}')
        if len(boxes) != noise.shape[0]:
            raise ValueError(f'boxes must have one entry per noise vector: got {len(boxes)} '
                             f'box tensors for {noise.shape[0]} noise vectors')
        h, w = self.init_size
        x = self.project(noise).view(noise.shape[0], self.base_channels, h, w)
        x = torch.cat([self.project_norm(x), self.rasterize(boxes, labels, (h, w))], dim=1)
        for block in self.blocks:
            h, w = 2 * h, 2 * w
            x = F.interpolate(x, scale_factor=2, mode='nearest')
            x = block(torch.cat([x, self.rasterize(boxes, labels, (h, w))], dim=1))
        return torch.sigmoid(self.to_rgb(x))

    def sample_noise(self, num: int, rng: Optional[torch.Generator] = None) -> Tensor:
        """Draws standard normal noise on the module's device.

        Args:
            num: Number of noise vectors.
            rng: Optional random source, for reproducible samples. The noise is drawn on its
                device and then moved, so a CPU ``torch.Generator`` gives the same values
                whatever device the module is on. Defaults to None (global random state).

        Returns:
            Tensor of shape (num, noise_dim).

        Raises:
            ValueError: If ``num`` is not a positive int.
        """
        _check_positive_int('num', num)
        device = self.project.weight.device
        draw_on = rng.device if rng is not None else device
        noise = torch.randn(num, self.noise_dim, generator=rng, device=draw_on)
        return noise.to(device)
