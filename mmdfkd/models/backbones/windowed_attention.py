"""Windowed self-attention (ViTDet) and locality self-attention (LSA) on timm ViT weights."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import Attention
from torch import nn

__all__ = ['WindowedAttention']


def _partition(x: torch.Tensor, grid: Tuple[int, int], window: Tuple[int, int]) -> torch.Tensor:
    """Split a token grid into windows, zero-padding the bottom and right borders.

    Args:
        x (torch.Tensor): Tokens of shape (B, heads, H * W, C) in row-major grid order.
        grid (tuple[int, int]): Grid size (H, W).
        window (tuple[int, int]): Window size (h, w).

    Returns:
        torch.Tensor: Windows of shape (B * nH * nW, heads, h * w, C), batch-major, where
        nH = ceil(H / h) and nW = ceil(W / w).
    """
    B, heads, _, C = x.shape
    (H, W), (h, w) = grid, window
    x = F.pad(x.reshape(B, heads, H, W, C), (0, 0, 0, -W % w, 0, -H % h))
    nH, nW = x.shape[2] // h, x.shape[3] // w
    x = x.reshape(B, heads, nH, h, nW, w, C).permute(0, 2, 4, 1, 3, 5, 6)
    return x.reshape(B * nH * nW, heads, h * w, C)


def _unpartition(x: torch.Tensor, batch_size: int, grid: Tuple[int, int],
                 window: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`_partition`: merge windows and crop the padding.

    Args:
        x (torch.Tensor): Windows of shape (B * nH * nW, heads, h * w, C).
        batch_size (int): B.
        grid (tuple[int, int]): Grid size (H, W) before padding.
        window (tuple[int, int]): Window size (h, w).

    Returns:
        torch.Tensor: Tokens of shape (B, heads, H * W, C).
    """
    (H, W), (h, w) = grid, window
    nH, nW = math.ceil(H / h), math.ceil(W / w)
    heads, C = x.shape[1], x.shape[3]
    x = x.reshape(batch_size, nH, nW, heads, h, w, C).permute(0, 3, 1, 4, 2, 5, 6)
    x = x.reshape(batch_size, heads, nH * h, nW * w, C)[:, :, :H, :W]
    return x.reshape(batch_size, heads, H * W, C)


class WindowedAttention(nn.Module):
    """Self-attention in non-overlapping windows, computed with a timm ``Attention``'s weights.

    Replaces a timm ``Attention`` inside a ViT block: it takes over that module's layers under the
    same names (``qkv``, ``q_norm``, ``k_norm``, ``norm``, ``proj``, ...), so parameter names and
    checkpoints are unchanged, and only the attention pattern differs.

    * Windowed attention (ViTDet, Li et al. 2022): patch tokens attend within ``window_size`` x
      ``window_size`` windows of the token grid, so the cost grows linearly with the image area.
      The grid is zero-padded at the bottom and right to whole windows, and the padded keys are
      masked out. Prefix tokens (class, distillation, register) attend to every token, and every
      window also attends to the prefix tokens; both are linear in the area too. With one window
      covering the whole grid the result equals timm's global attention.
    * Locality self-attention (LSA, Lee et al. 2021, "Vision Transformer for Small-Size
      Datasets"): a learnable softmax temperature, initialised to timm's ``sqrt(head_dim)``, and
      diagonal masking (a token does not attend to itself).

    The token grid size changes with the input, so the owning backbone sets :attr:`grid_size`
    before each forward pass.

    Args:
        attn (timm.layers.Attention): The attention whose layers are reused.
        window_size (int): Window side in tokens; 0 means global attention. Windows are clamped
            to the grid, so a grid smaller than the window is not padded. Defaults to 0.
        lsa (bool): Use locality self-attention. Defaults to False.
    """

    def __init__(self, attn: Attention, window_size: int = 0, lsa: bool = False) -> None:
        if type(attn) is not Attention:
            raise TypeError(
                f'WindowedAttention reuses the layers of timm.layers.Attention, got '
                f'{type(attn).__name__}; use a timm ViT whose blocks use the standard Attention, '
                f'or set window_size=0 and lsa=False on the backbone')
        if window_size < 0:
            raise ValueError(f'window_size must be >= 0 (0 = global attention), got {window_size}')
        super().__init__()
        self.num_heads = attn.num_heads
        self.head_dim = attn.head_dim
        self.attn_dim = attn.attn_dim
        self.qkv = attn.qkv
        self.q_norm = attn.q_norm
        self.k_norm = attn.k_norm
        self.attn_drop = attn.attn_drop
        self.norm = attn.norm
        self.gate = attn.gate
        self.proj = attn.proj
        self.proj_drop = attn.proj_drop
        self.window_size = window_size
        # LSA temperature T, stored as log T; attention logits are q.k / T.
        self.log_temperature = nn.Parameter(
            torch.tensor(0.5 * math.log(self.head_dim))) if lsa else None
        self.grid_size: Optional[Tuple[int, int]] = None

    def extra_repr(self) -> str:
        return f'window_size={self.window_size}, lsa={self.log_temperature is not None}'

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        """Attend.

        Args:
            x (torch.Tensor): Tokens of shape (B, P + H * W, C): P prefix tokens, then the
                (H, W) = :attr:`grid_size` patch tokens in row-major order.
            attn_mask (None): Not supported; present for the timm ``Block`` call signature.
            is_causal (bool): Not supported; must be False.

        Returns:
            torch.Tensor: Tokens of shape (B, P + H * W, C).
        """
        if attn_mask is not None or is_causal:
            raise ValueError('WindowedAttention does not support attn_mask or is_causal')
        if self.grid_size is None:
            raise RuntimeError(
                'WindowedAttention.grid_size is not set; the backbone (TimmViT) must set it to '
                'the token grid (H, W) before each forward pass')
        B, N, _ = x.shape
        H, W = self.grid_size
        num_prefix = N - H * W
        if num_prefix < 0:
            raise ValueError(f'got {N} tokens, fewer than the {H}x{W} grid in grid_size')

        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        q, k = self.q_norm(q), self.k_norm(k)
        lsa = self.log_temperature is not None
        scale = None  # SDPA default: head_dim ** -0.5, as timm
        if lsa:
            q = q * torch.exp(-self.log_temperature)
            scale = 1.0
        dropout_p = self.attn_drop.p if self.training else 0.

        window = (min(self.window_size, H), min(self.window_size, W))
        if self.window_size == 0 or window == (H, W):
            mask = _not_self(N, N, 0, x.device) if lsa else None
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
        else:
            out = self._window_attention(q, k, v, num_prefix, window, dropout_p, scale)

        x = out.transpose(1, 2).reshape(B, N, self.attn_dim)
        x = self.norm(x)
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))

    def _window_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          num_prefix: int, window: Tuple[int, int], dropout_p: float,
                          scale: Optional[float]) -> torch.Tensor:
        """Patch queries attend to their window and the prefix; prefix queries to all tokens.

        Args:
            q, k, v (torch.Tensor): Each of shape (B, heads, P + H * W, head_dim).
            num_prefix (int): P.
            window (tuple[int, int]): Window size (h, w), at most the grid size.
            dropout_p (float): Attention dropout probability.
            scale (float, optional): Logit scale passed to SDPA.

        Returns:
            torch.Tensor: Attention output of shape (B, heads, P + H * W, head_dim).
        """
        B = q.shape[0]
        grid = self.grid_size
        P = num_prefix
        qw, kw, vw = (_partition(t[:, :, P:], grid, window) for t in (q, k, v))
        num_windows, L = qw.shape[0] // B, qw.shape[2]
        if P:
            def with_prefix(t: torch.Tensor, tw: torch.Tensor) -> torch.Tensor:
                prefix = t[:, None, :, :P].expand(-1, num_windows, -1, -1, -1).flatten(0, 1)
                return torch.cat([prefix, tw], dim=2)
            kw, vw = with_prefix(k, kw), with_prefix(v, vw)

        padded = grid[0] % window[0] or grid[1] % window[1]
        lsa = self.log_temperature is not None
        mask = None
        if padded or lsa:
            # (num_windows, 1, 1, P + L): prefix keys and real (not padded) patch keys
            real = _partition(q.new_ones(1, 1, grid[0] * grid[1], 1), grid, window) > 0
            real = torch.cat([real.new_ones(num_windows, 1, P, 1), real], dim=2).transpose(2, 3)
            mask = real & _not_self(L, P + L, P, q.device) if lsa else real
            mask = mask.repeat(B, 1, 1, 1)  # (B * num_windows, 1, L or 1, P + L)
        out = _unpartition(
            F.scaled_dot_product_attention(
                qw, kw, vw, attn_mask=mask, dropout_p=dropout_p, scale=scale),
            B, grid, window)
        if P:
            prefix_mask = _not_self(P, q.shape[2], 0, q.device) if lsa else None
            prefix_out = F.scaled_dot_product_attention(
                q[:, :, :P], k, v, attn_mask=prefix_mask, dropout_p=dropout_p, scale=scale)
            out = torch.cat([prefix_out, out], dim=2)
        return out


def _not_self(num_queries: int, num_keys: int, offset: int, device: torch.device) -> torch.Tensor:
    """LSA diagonal mask: query i may not attend to key i + offset.

    Returns:
        torch.Tensor: Boolean mask of shape (num_queries, num_keys), True where attending is
        allowed.
    """
    mask = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device)
    queries = torch.arange(num_queries, device=device)
    mask[queries, queries + offset] = False
    return mask
