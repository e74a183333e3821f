"""A convolutional β-VAE (Higgins et al. 2017): the learned feature space in which DIG-CV searches.

Written by hand because none of our libraries ships one. Pixels in [0,1] are modelled as Bernoulli
means (binary cross-entropy), the usual choice for MNIST-like images; β > 1 weighs the KL term up,
which favours disentangled latent directions along which interpolations stay digit-like.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.errors import UserError
from xai_cli.models.base import StorableModule
from xai_cli.models.generators import check_generated_size


class BetaVAE(StorableModule):
    """Stride-2 convolutions down to a quarter of the side (an eighth above 32 px: one stage per entry of
    `channels`, the last repeated), a dense bottleneck, and the mirror image back up."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 10, beta: float = 2.0,
                 channels: Sequence[int] = (32, 64), hidden: int = 256) -> None:
        super().__init__()
        c, h, w = (int(s) for s in input_shape)
        check_generated_size("beta_vae", (c, h, w))
        widths = [int(k) for k in channels]
        if max(h, w) > 32 and len(widths) == 2:  # keep the flattened features at most 8x8 per channel
            widths.append(widths[-1])
        factor = 2 ** len(widths)
        if h % factor or w % factor:
            raise UserError(f"beta_vae halves {h}x{w} images {len(widths)} times, so their sides must be multiples "
                            f"of {factor}: set dataset.image_size to one")
        self.input_shape, self.latent_dim, self.beta = (c, h, w), int(latent_dim), float(beta)
        self._feature_shape = (widths[-1], h // factor, w // factor)
        flat = widths[-1] * (h // factor) * (w // factor)
        down: list[nn.Module] = []
        for c_in, c_out in zip([c, *widths[:-1]], widths):
            down += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * self.latent_dim))
        self.decoder_fc = nn.Sequential(nn.Linear(self.latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, flat), nn.ReLU())
        up: list[nn.Module] = []
        for c_in, c_out in zip(widths[::-1], [*widths[-2::-1], c]):
            up += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder_conv = nn.Sequential(*up[:-1])  # logits out: no activation after the last layer

    # --- the model ----------------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_conv(self.decoder_fc(z).view(-1, *self._feature_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of x through the posterior mean (no sampling)."""
        return torch.sigmoid(self.decode_logits(self.posterior(x)[0]))

    @staticmethod
    def kl_sum(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) summed over the batch."""
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    def loss_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction NLL and KL(q(z|x) || N(0, I)), each averaged over the batch."""
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
        recon = F.binary_cross_entropy_with_logits(self.decode_logits(z), x, reduction="sum") / len(x)
        return recon, self.kl_sum(mu, logvar) / len(x)

    # --- what the training module asks for -------------------------------------------------------------
    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        recon, kl = self.loss_terms(x)
        return recon + self.beta * kl

    def validation_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.posterior(x)  # one encoder pass for both metrics
        recon = torch.sigmoid(self.decode_logits(mu))
        return {"val_recon_mse": F.mse_loss(recon, x), "val_kl": self.kl_sum(mu, logvar) / len(x)}

    # --- what the analyses use -------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Posterior means (N, latent_dim) on the CPU. Batches of 256 keep the convolutions in cache: twice as
        fast on a CPU as 1,024."""
        self.eval()
        return torch.cat([self.posterior(x[i : i + batch_size].to(self.device))[0].cpu()
                          for i in range(0, len(x), batch_size)]) if len(x) else torch.zeros(0, self.latent_dim)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images (N, C, H, W) in [0,1] on the CPU."""
        self.eval()
        z = torch.as_tensor(z, dtype=torch.float32)
        return torch.cat([torch.sigmoid(self.decode_logits(z[i : i + batch_size].to(self.device))).cpu()
                          for i in range(0, len(z), batch_size)]) if len(z) else torch.zeros(0, *self.input_shape)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
        """Reconstruction MSE per pixel and mean KL per image on x, beside the MSE of predicting the mean image."""
        self.eval()
        mse, kl = 0.0, 0.0
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(self.device)
            mu, logvar = self.posterior(xb)
            mse += float(F.mse_loss(torch.sigmoid(self.decode_logits(mu)), xb, reduction="sum"))
            kl += float(self.kl_sum(mu, logvar))
        n_pixels = x[0].numel() * len(x)
        mean_image_mse = float(((x - x.mean(0, keepdim=True)) ** 2).mean())
        return {"recon_error": mse / n_pixels, "kl": kl / len(x), "mean_image_mse": mean_image_mse}
