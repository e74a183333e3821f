"""Model-agnostic counterfactuals from a learned actor in the β-VAE's latent space.

After Samoilescu, Van Looveren & Klaise, "Model-agnostic and Scalable Counterfactual Explanations via
Reinforcement Learning" (2021): an actor maps (code z, target class t) to a latent edit Δz; the
counterfactual is decode(z + Δz), one forward pass. It is trained DDPG-style with only the classifier's
outputs (LatentRLFit): a critic, fitted on the classifier's answers to the actor's noisy edits, stands in
for the black box differentiably, and the actor climbs it while paying for the pixel change. Written by hand:
alibi's CounterfactualRL is TensorFlow/Keras-first and trains an autoencoder of its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.counterfactuals.base import Context, CounterfactualMethod
from xai_cli.models.base import StorableModule
from xai_cli.utils.progress import track

log = logging.getLogger("xai")


def _mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class LatentActor(StorableModule):
    """(z, one-hot t) -> Δz, bounded by `max_step` per latent coordinate."""

    def __init__(self, latent_dim: int, num_classes: int, hidden: int = 256, max_step: float = 3.0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.max_step = int(latent_dim), int(num_classes), float(max_step)
        self.net = _mlp(self.latent_dim + self.num_classes, self.latent_dim, hidden)

    def forward(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = F.one_hot(target, self.num_classes).float()
        return self.max_step * torch.tanh(self.net(torch.cat([z, t], 1)))


class LatentRLFit:
    """Trains a LatentActor against one classifier and one β-VAE (both handed over by the store's caller).

    DDPG-style, with the critic factored: the reward of an edit depends only on where it lands, so the
    critic learns the black box's class probabilities at a code, critic(z + Δz) ≈ f(decode(z + Δz)), from
    the answers to the actor's noisy edits (kept in a replay buffer) — ten numbers per query instead of one
    scalar reward, which makes it learn from far fewer queries. The actor then climbs log critic_t(z + Δz)
    while paying `distance_weight` × the mean pixel change of the decoded image (the decoder is ours, so
    that gradient is free; the classifier is only ever asked for predict_proba)."""

    def __init__(self, steps: int = 3000, batch_size: int = 128, hidden: int = 256, lr: float = 1e-3,
                 noise: float = 0.5, distance_weight: float = 1.0, margin: float = 1.0,
                 buffer_size: int = 50_000) -> None:
        self.steps, self.batch_size, self.hidden, self.lr = int(steps), int(batch_size), int(hidden), float(lr)
        self.noise, self.distance_weight, self.margin = float(noise), float(distance_weight), float(margin)
        self.buffer_size = int(buffer_size)

    def fit(self, actor: LatentActor, data: Any, trainer_cfg: Any, seed: int, label: str, *, classifier: Any,
            vae: Any, train_probabilities: Callable[[], np.ndarray] | None = None, **_: Any) -> Any:
        from xai_cli.training.fit import FitResult

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        device = vae.device
        train_x = data.split("train").x
        codes = vae.encode(train_x).to(device)
        probs = train_probabilities() if train_probabilities is not None else classifier.predict_proba(train_x)
        predicted = torch.from_numpy(np.asarray(probs).argmax(1)).to(device)
        k, d = actor.num_classes, actor.latent_dim
        actor.to(device).train()
        critic = _mlp(d, k, self.hidden).to(device)
        opt_actor = torch.optim.Adam(actor.parameters(), lr=self.lr)
        opt_critic = torch.optim.Adam(critic.parameters(), lr=self.lr)
        buffer_z = torch.zeros(self.buffer_size, d, device=device)
        buffer_p = torch.zeros(self.buffer_size, k, device=device)
        filled = 0
        vae.eval()
        for p in vae.parameters():
            p.requires_grad_(False)

        start, queries = time.perf_counter(), 0
        try:
            for step in track(range(self.steps), f"{label}: training the counterfactual actor", total=self.steps):
                rows = torch.from_numpy(rng.choice(len(codes), self.batch_size)).to(device)
                z = codes[rows]
                # a target other than the classifier's current answer
                t = (predicted[rows] + torch.from_numpy(rng.integers(1, k, self.batch_size)).to(device)) % k
                with torch.no_grad():  # explore around the actor's edit and ask the black box where it landed
                    noise = self.noise * (1 - step / self.steps) + 0.05
                    landed = z + (actor(z, t) + noise * torch.randn_like(z)).clamp(-actor.max_step, actor.max_step)
                    answer = torch.as_tensor(np.asarray(classifier.predict_proba(vae.decode(landed))),
                                             dtype=torch.float32, device=device)
                    queries += len(landed)
                    slots = torch.arange(filled, filled + len(landed), device=device) % self.buffer_size
                    buffer_z[slots], buffer_p[slots] = landed, answer
                    filled += len(landed)
                    replay = torch.from_numpy(rng.integers(0, min(filled, self.buffer_size), self.batch_size)).to(device)
                critic_in = torch.cat([landed, buffer_z[replay]])
                critic_target = torch.cat([answer, buffer_p[replay]])
                critic_loss = -(critic_target * F.log_softmax(critic(critic_in), 1)).sum(1).mean()
                opt_critic.zero_grad()
                critic_loss.backward()
                opt_critic.step()

                moved = z + actor(z, t)
                log_q = F.log_softmax(critic(moved), 1)
                own = log_q.gather(1, t[:, None])[:, 0]
                other = log_q.masked_fill(F.one_hot(t, k).bool(), float("-inf")).max(1).values
                shortfall = (other - own + self.margin).clamp_min(0)  # 0 once t leads by the margin
                with torch.no_grad():
                    base = torch.sigmoid(vae.decode_logits(z))
                distance = (torch.sigmoid(vae.decode_logits(moved)) - base).abs().flatten(1).mean(1)
                actor_loss = (shortfall + self.distance_weight * distance).mean()
                opt_actor.zero_grad()
                actor_loss.backward()
                opt_actor.step()
        finally:
            for p in vae.parameters():
                p.requires_grad_(True)
        actor.cpu().eval()
        return FitResult(time.perf_counter() - start, {"steps": self.steps, "classifier_queries": queries,
                                                       "final_critic_loss": float(critic_loss.detach()),
                                                       "final_actor_loss": float(actor_loss.detach())})


class LatentRL(CounterfactualMethod):
    """Counterfactuals in one actor pass; the actor is trained once per (classifier, β-VAE) into the store."""

    needs_gradients = False

    def __init__(self, actor: Any, fit: Any) -> None:
        self.actor_cfg, self.fit_cfg = actor, fit
        self.actor: LatentActor | None = None

    def prepare(self, ctx: Context) -> dict[str, Any]:
        if ctx.store is None:
            raise ValueError("latent_rl needs the model store")
        stored = ctx.store(self.actor_cfg, self.fit_cfg)
        self.actor = stored.model.eval()
        return {"actor": str(stored.path), "actor_from_store": not stored.trained_now,
                "actor_train_time_s": stored.meta["fit"]["train_time_s"]}

    @torch.no_grad()
    def generate(self, ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert self.actor is not None, "prepare() first"
        z = ctx.vae.encode(x)
        return ctx.vae.decode(z + self.actor.cpu()(z, target.cpu()))
