"""Where counterfactual segments are drawn: a β-VAE's latent space (DIG-CV) or the raw inputs (DIG).

A space maps inputs to coordinates (`encode`) and coordinates back to inputs the models can read
(`decode`); segments are straight lines between coordinates. In the input space a segment is a pixel
cross-fade; in the latent space it decodes to a morph that stays on the image manifold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

if TYPE_CHECKING:
    from xai_cli.analysis.context import ModelSpec, RunContext


class InputSpace:
    name = "input"
    needs_generator = False

    def __init__(self) -> None:
        self.input_shape: tuple[int, ...] = ()

    def prepare(self, ctx: "RunContext", generator: "ModelSpec | None") -> dict[str, Any] | None:
        self.input_shape = tuple(ctx.data.input_shape)
        return None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(len(z), *self.input_shape)


class LatentSpace:
    """Posterior means of a β-VAE from the model store (trained there first if missing)."""

    name = "latent"
    needs_generator = True  # the β-VAE of `generator=`

    def __init__(self, vae: Any = None) -> None:
        self.vae = vae

    def prepare(self, ctx: "RunContext", generator: "ModelSpec | None") -> dict[str, Any]:
        """Fetch the β-VAE of `generator` from the store (training it there if missing) and report its quality."""
        from xai_cli.errors import UserError

        data = ctx.data
        if len(data.input_shape) != 3:
            raise UserError(f"space=latent needs images; {data.name} has inputs of shape "
                            f"{tuple(data.input_shape)}: use space=input")
        if generator is None:
            raise UserError("space=latent needs a generator (a β-VAE)")
        stored = ctx.fetch(generator)
        self.vae = stored.model
        quality = self.vae.evaluate(data.split("test").x)
        return {"checkpoint": str(stored.path), "from_store": not stored.trained_now,
                "latent_dim": self.vae.latent_dim, "beta": self.vae.beta,
                "train_time_s": stored.meta["fit"]["train_time_s"], **quality}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z)


def interpolate(z_from: torch.Tensor, z_to: torch.Tensor, t: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Points z_from + t (z_to - z_from): (S, D) ends and (S, T) or (T,) positions give (S, T, D)."""
    t = torch.as_tensor(t, dtype=z_from.dtype)
    if t.dim() == 1:
        t = t.expand(len(z_from), -1)
    return z_from[:, None, :] + t[..., None] * (z_to - z_from)[:, None, :]
