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

from xai_cli.models.base import StorableModule


class BetaVAE(StorableModule):
    def __init__(self, input_shape: Sequence[int], latent_dim: int = 10, beta: float = 2.0,
                 channels: Sequence[int] = (32, 64), hidden: int = 256) -> None:
        super().__init__()
        c, h, w = (int(s) for s in input_shape)
        if h % 4 or w % 4:
            raise ValueError(f"beta_vae needs image sides divisible by 4, got {h}x{w}")
        c1, c2 = (int(k) for k in channels)
        self.input_shape, self.latent_dim, self.beta = (c, h, w), int(latent_dim), float(beta)
        self._feature_shape = (c2, h // 4, w // 4)
        flat = c2 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * self.latent_dim),
        )
        self.decoder_fc = nn.Sequential(nn.Linear(self.latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, flat), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1),
        )

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
