"""Generators: models of the images themselves (the β-VAE behind `discrepancy` and `counterfactual`, the
conditional GANs behind `uncertainty`)."""

from __future__ import annotations

from typing import Sequence

from xai_cli.errors import UserError

# The generative models here are sized to train in minutes on a CPU; up to this side they scale with the
# images (more stages, wider outputs), beyond it they would need architectures, and hours, of their own.
MAX_SIDE = 64


def check_generated_size(model: str, shape: Sequence[int]) -> None:
    """Refuse images larger than MAX_SIDE in one line that names the setting to change."""
    if len(shape) == 3 and max(int(shape[1]), int(shape[2])) > MAX_SIDE:
        raise UserError(f"{model} generates images up to {MAX_SIDE} px, these are {int(shape[1])}x{int(shape[2])}: "
                        f"set dataset.image_size={MAX_SIDE} (or smaller)")
