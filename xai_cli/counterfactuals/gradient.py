"""Counterfactuals by gradient descent on the input: Wachter et al. and prototype-guided.

alibi implements both in TensorFlow 1-style graphs only; these are the same objectives in PyTorch, batched
over images, each image with its own λ.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F

from xai_cli.counterfactuals.base import Context, CounterfactualMethod
from xai_cli.utils.progress import track


class GradientCounterfactual(CounterfactualMethod):
    """Optimise x' = clamp(x + δ, 0, 1) with Adam on  c · prediction_loss + the method's other terms.

    c, the weight of reaching the target, is searched per image over `search_rounds` rounds of `steps` Adam
    steps each (the budget: forward and backward passes per image), as alibi does for both methods: ×10
    after a round that never reached the target until one does, then bisection between the largest c that
    failed and the smallest that succeeded (a smaller c buys a smaller change). The valid x' with the
    smallest L1 change seen at any step of any round is kept; an image that never reaches its target is
    returned unchanged (the caller sees it is not valid)."""

    def __init__(self, c: float = 1.0, steps: int = 100, search_rounds: int = 4, lr: float = 0.05) -> None:
        self.c, self.steps, self.search_rounds, self.lr = float(c), int(steps), int(search_rounds), float(lr)

    @abstractmethod
    def terms(self, ctx: Context, x_cf: torch.Tensor, x: torch.Tensor,
              target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image (N,): the prediction loss and the sum of the other terms; and the logits on x_cf (N, K)."""

    def generate(self, ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        device = next(ctx.model.parameters()).device
        x, target = x.to(device), target.to(device)
        c = torch.full((len(x),), self.c, device=device)
        failed, succeeded = torch.zeros_like(c), torch.full_like(c, float("inf"))
        best = x.clone()
        best_l1 = torch.full((len(x),), float("inf"), device=device)
        total = self.search_rounds * self.steps
        for step in track(range(total), f"{type(self).__name__.lower()}: {len(x)} images", total=total):
            if step % self.steps == 0:  # a new round starts from x
                delta = torch.zeros_like(x, requires_grad=True)
                optimizer = torch.optim.Adam([delta], lr=self.lr)
                reached = torch.zeros(len(x), dtype=torch.bool, device=device)
            x_cf = (x + delta).clamp(0, 1)
            prediction, rest, logits = self.terms(ctx, x_cf, x, target)
            # gradients for δ only: the classifier's and the VAE's weights stay untouched
            (delta.grad,) = torch.autograd.grad((c * prediction + rest).sum(), delta)
            with torch.no_grad():  # judge the point the loss was computed at: no extra forward pass
                valid = logits.argmax(1) == target
                l1 = (x_cf - x).abs().flatten(1).sum(1)
                better = valid & (l1 < best_l1)
                best[better], best_l1[better] = x_cf[better].detach(), l1[better]
                reached |= valid
            optimizer.step()
            if (step + 1) % self.steps == 0:
                succeeded = torch.where(reached, torch.minimum(succeeded, c), succeeded)
                failed = torch.where(reached, failed, torch.maximum(failed, c))
                c = torch.where(torch.isinf(succeeded), c * 10, (failed + succeeded) / 2)
        return best.detach().cpu()


class Wachter(GradientCounterfactual):
    """λ (f_t(x') − p_t)² + ‖x' − x‖₁ (Wachter, Mittelstadt & Russell 2017), p_t the desired probability; λ is
    the searched weight c (Wachter's max over λ). The same objective as (f_t − p_t)² + (1/λ)‖x' − x‖₁.

    `scale`: f is the target-class probability (`probability`, the paper's letter) or its logarithm
    (`log_probability`, p_t then log p_t). On a confident network the target class often starts at
    p ≈ 1e-9, where the probability's gradient vanishes and the L1 term wins for every λ a search tries:
    on the digits cnn 14 % of images never reach a second-most-likely target that way. The log scale has the
    same minimum and a gradient that does not vanish; it is the default."""

    def __init__(self, lam: float = 1.0, target_probability: float = 1.0, scale: str = "log_probability",
                 **kwargs: Any) -> None:
        super().__init__(c=lam, **kwargs)
        if scale not in ("probability", "log_probability"):
            raise ValueError(f"wachter scale={scale}: use probability or log_probability")
        self.target_probability, self.scale = float(target_probability), scale

    def terms(self, ctx: Context, x_cf: torch.Tensor, x: torch.Tensor,
              target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = ctx.model(x_cf)
        if self.scale == "probability":
            gap = F.softmax(logits, dim=1).gather(1, target[:, None])[:, 0] - self.target_probability
        else:
            gap = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0] - math.log(self.target_probability)
        return gap ** 2, (x_cf - x).abs().flatten(1).sum(1), logits


class Prototype(GradientCounterfactual):
    """Van Looveren & Klaise (2021): c·max(max_{i≠t} f_i − f_t + κ, 0) + β‖δ‖₁ + ‖δ‖₂²
    + γ‖x' − AE(x')‖² + θ‖enc(x') − proto_t‖² (f: logits), the prototype of class t being the mean code of
    the k training instances the classifier assigns to t nearest to enc(x) in the β-VAE's latent space; c is
    searched as in the paper."""

    def __init__(self, c: float = 1.0, kappa: float = 0.0, beta: float = 0.1, gamma: float = 1.0,
                 theta: float = 10.0, k: int = 5, **kwargs: Any) -> None:
        super().__init__(c=c, **kwargs)
        self.kappa, self.beta, self.gamma, self.theta, self.k = kappa, beta, gamma, theta, int(k)
        self._codes: torch.Tensor | None = None
        self._proto: torch.Tensor | None = None

    def prepare(self, ctx: Context) -> dict[str, Any]:
        # one-off, outside the timed generation: the training set's codes and the classifier's labels of it
        self._codes = ctx.vae.encode(ctx.train_x)
        ctx.train_pred  # noqa: B018 (computes and caches)
        return {"prototype_k": self.k}

    def prototypes(self, ctx: Context, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, D): per image, the mean code of the k training instances the classifier assigns to its target
        class that lie nearest to its own code."""
        assert self._codes is not None, "prepare() first"
        out = torch.empty_like(z)
        for t in target.unique():
            rows = (target == t).nonzero()[:, 0]
            pool = self._codes[ctx.train_pred == t]
            if not len(pool):
                raise ValueError(f"no training image is predicted as class {int(t)}: no prototype for it")
            nearest = torch.cdist(z[rows], pool).topk(min(self.k, len(pool)), largest=False).indices
            out[rows] = pool[nearest].mean(1)
        return out

    def generate(self, ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._proto = self.prototypes(ctx, ctx.vae.encode(x), target.cpu()).to(ctx.vae.device)
        return super().generate(ctx, x, target)

    def terms(self, ctx: Context, x_cf: torch.Tensor, x: torch.Tensor,
              target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = ctx.model(x_cf)
        own = logits.gather(1, target[:, None])[:, 0]
        other = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), float("-inf")).max(1).values
        attack = (other - own + self.kappa).clamp_min(0)
        delta = (x_cf - x).flatten(1)
        distance = self.beta * delta.abs().sum(1) + delta.pow(2).sum(1)
        mu, _ = ctx.vae.posterior(x_cf)
        recon = torch.sigmoid(ctx.vae.decode_logits(mu))
        autoencoder = self.gamma * (x_cf - recon).flatten(1).pow(2).sum(1)
        prototype = self.theta * (mu - self._proto).pow(2).sum(1)
        return attack, distance + autoencoder + prototype, logits
