"""Bring any image array to the (N, C, H, W) float32 [0, 1] layout every model here expects."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def to_nchw(images: np.ndarray | torch.Tensor, channels: int, image_size: int | None) -> torch.Tensor:
    """(N,H,W), (N,H,W,C) or (N,C,H,W), uint8 or float -> (N, channels, size, size) float in [0, 1]."""
    x = torch.as_tensor(np.asarray(images))
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        if x.numel() and float(x.max()) > 1.0:  # float images stored as 0..255
            x = x / 255.0
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)
    elif x.ndim != 4:
        raise ValueError(f"expected images of shape (N,H,W), (N,H,W,C) or (N,C,H,W), got {tuple(x.shape)}")
    if x.shape[1] == 4:  # drop alpha
        x = x[:, :3]
    if channels == 1 and x.shape[1] == 3:
        x = (x * _LUMA).sum(1, keepdim=True)
    elif channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != channels:
        raise ValueError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(0.0, 1.0).contiguous()
