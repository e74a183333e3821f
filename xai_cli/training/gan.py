"""Training a ConditionalGAN against a frozen classifier: the fitter the model store calls for `mlp_gan`
(and the image GAN), and the LightningModule it runs (manual optimisation: two optimisers per step).

Losses are StyleGAN2's: non-saturating logistic for both players, a lazy R1 penalty on real data every
`r1_every` discriminator steps (scaled up by that interval), the generator's EMA updated after every
generator step. Real images carry their own condition (label, MSP of the frozen classifier); fake
conditions are the (label, MSP) pairs of other, randomly drawn real images, so they follow the real
distribution. `aux_weight` > 0 adds the seed paper's suggested next step: a term pulling the classifier's
probability of the conditioned class on fakes to the MSP condition (a Bernoulli KL, in logit space), with a
hinge keeping that class on top.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Sampler, TensorDataset

from xai_cli.data.base import ArrayDataModule
from xai_cli.errors import UserError, first_line
from xai_cli.models.generators.conditional_gan import ConditionalGAN
from xai_cli.training.fit import FitResult
from xai_cli.training.trainer import FitBar, build_trainer, ctrl_c_passes_through
from xai_cli.utils.progress import interactive

log = logging.getLogger("xai")


class EpochShuffle(Sampler[int]):
    """A shuffle drawn from (seed, epoch) alone, so that a run resumed from a checkpoint draws the same batches
    as one that never stopped: Lightning calls `set_epoch` before every epoch, and `skip` (set on resume) drops
    the part of the interrupted epoch already trained on, since Lightning restarts that epoch's iterator."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        skip, self.skip = self.skip, 0
        return iter(order[skip:].tolist())

    def __len__(self) -> int:
        return self.size


class GANDiverged(UserError):
    """The losses stopped being finite: nothing is stored, and the message says what to change."""


def aux_loss(logits: torch.Tensor, labels: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
    """Per sample: KL(Bernoulli(msp) ‖ Bernoulli(p_label)), plus how far the label's log-probability trails
    the best other class.

    In logit space on purpose: its gradient on the label's logit is p_label − msp, whatever the classifier's
    saturation, where a squared error on the probability, (p − msp)², is scaled by p(1 − p) and vanishes on a
    confident classifier (p ≈ 1): the generator then barely learns to lower the MSP. Only the label's share
    is asked for; how the rest spreads over the other classes is left to the generator.
    """
    log_p = F.log_softmax(logits, 1)
    own = log_p.gather(1, labels[:, None])[:, 0]
    others = log_p.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    log_rest = others.logsumexp(1)  # log(1 − p_label), stable when p_label → 1
    m = msp.clamp(1e-6, 1 - 1e-6)
    kl = m * (m.log() - own) + (1 - m) * ((1 - m).log() - log_rest)
    return kl + (others.max(1).values - own).clamp_min(0)


def translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each image by its own random whole-pixel offset in [-max_shift, max_shift]², zeros coming in
    (DiffAugment's translation, Zhao et al. 2020): differentiable, so the generator learns through it.
    Applied to real and fake images alike before the discriminator, so it cannot memorise a small training set."""
    if max_shift <= 0 or x.dim() != 4:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy
    cols = torch.arange(w, device=x.device)[None, None, :] + dx
    return padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


class GANModule(L.LightningModule):
    def __init__(self, gan: ConditionalGAN, classifier: Any, lr_g: float, lr_d: float, betas: tuple[float, float],
                 r1_gamma: float, r1_every: int, ema_beta: float, aux_weight: float, mapping_lr_mult: float = 1.0,
                 max_shift: int = 0, pl_weight: float = 0.0, pl_every: int = 4) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.gan = gan
        self._classifier = [classifier]  # a list: frozen, never a submodule (not trained, not saved with the GAN)
        self.lr_g, self.lr_d, self.betas = lr_g, lr_d, tuple(betas)
        self.r1_gamma, self.r1_every, self.ema_beta, self.aux_weight = r1_gamma, int(r1_every), ema_beta, aux_weight
        self.mapping_lr_mult, self.max_shift = float(mapping_lr_mult), int(max_shift)
        self.pl_weight, self.pl_every, self.pl_mean = float(pl_weight), int(pl_every), 0.0
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.batches_in_epoch = 0
        self._resume: dict[str, Any] | None = None  # from a checkpoint, applied when training starts

    @property
    def classifier(self) -> Any:
        return self._classifier[0]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["xai_first_losses"] = self.first  # a resumed run still reports where the losses began
        checkpoint["xai_pl_mean"] = self.pl_mean
        # what the next step draws (latents, fake conditions, shifts) and where in its epoch it is: a resumed
        # run goes on exactly as an uninterrupted one would
        checkpoint["xai_rng"] = {"cpu": torch.get_rng_state(),
                                 **({"cuda": torch.cuda.get_rng_state()} if self.device.type == "cuda" else {})}
        checkpoint["xai_batches_in_epoch"] = self.batches_in_epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.first = checkpoint.get("xai_first_losses", {})
        self.pl_mean = checkpoint.get("xai_pl_mean", 0.0)
        if "xai_rng" in checkpoint:
            self._resume = {"rng": checkpoint["xai_rng"], "batches": int(checkpoint.get("xai_batches_in_epoch", 0))}

    def on_train_start(self) -> None:
        if self.aux_weight > 0:
            self.classifier.to(self.device).eval().requires_grad_(False)
        if self._resume is not None:  # restored here: Lightning's own setup draws before
            torch.set_rng_state(self._resume["rng"]["cpu"])
            if "cuda" in self._resume["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(self._resume["rng"]["cuda"])
            self.batches_in_epoch = self._resume["batches"]
            sampler = getattr(self.trainer.train_dataloader, "sampler", None)
            if isinstance(sampler, EpochShuffle):
                sampler.skip = self.batches_in_epoch * self.trainer.train_dataloader.batch_size
            self._resume = None

    def on_train_epoch_start(self) -> None:  # not called for an epoch a resumed run re-enters
        self.batches_in_epoch = 0

    def path_length_penalty(self, condition: torch.Tensor) -> torch.Tensor:
        """StyleGAN2's path-length regularisation: a fixed-size step in w should move the image by a fixed
        amount, whatever w. |J_wᵀ y| for random image-space directions y, pulled towards its running mean;
        on half the batch, as in StyleGAN2."""
        g = self.gan.generator
        n = max(1, len(condition) // 2)
        ws = g.per_block(g.mapping(self.gan.sample_latent(n), condition[:n]))
        images = g.synthesis(ws)
        directions = torch.randn_like(images) / math.sqrt(images.shape[-2] * images.shape[-1])
        (grad,) = torch.autograd.grad((images * directions).sum(), ws, create_graph=True)
        lengths = grad.pow(2).sum(2).mean(1).sqrt()
        self.pl_mean += 0.01 * (float(lengths.mean().detach()) - self.pl_mean)
        return (lengths - self.pl_mean).pow(2).mean()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        g = self.gan.generator
        mapping = list(g.mapping.parameters()) if hasattr(g, "mapping") else []
        # StyleGAN's mapping network learns 100× slower than the synthesis network: w must drift slowly
        # for the styles built on it to stay meaningful
        groups = [{"params": [p for p in g.parameters() if all(p is not q for q in mapping)]}]
        if mapping:
            groups.append({"params": mapping, "lr": self.lr_g * self.mapping_lr_mult})
        return [torch.optim.Adam(groups, lr=self.lr_g, betas=self.betas),
                torch.optim.Adam(self.gan.discriminator.parameters(), lr=self.lr_d, betas=self.betas)]

    def _check(self, name: str, value: torch.Tensor) -> None:
        if not torch.isfinite(value):
            raise GANDiverged(f"GAN training diverged at step {self.global_step // 2 + 1}: {name} is "
                              f"{float(value.detach())} "
                              f"(lower the learning rates, generator.fit.lr_g / lr_d, or raise r1_gamma)")

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, labels, msp = batch
        self.batches_in_epoch += 1
        opt_g, opt_d = self.optimizers()
        g, d = self.gan.generator, self.gan.discriminator
        perm = torch.randperm(len(x), device=x.device)  # fake conditions: other real images' (label, MSP)
        fake_labels, fake_msp = labels[perm], msp[perm]
        c_real, c_fake = self.gan.condition(labels, msp), self.gan.condition(fake_labels, fake_msp)

        # discriminator: real up, fake down
        z = self.gan.sample_latent(len(x))
        with torch.no_grad():
            fake = g(z, c_fake)
        real = translate(x, self.max_shift)
        loss_d = F.softplus(d(translate(fake, self.max_shift), c_fake)).mean() + F.softplus(-d(real, c_real)).mean()
        self._check("the discriminator loss", loss_d)
        total_d = loss_d
        if self.r1_gamma > 0 and batch_idx % self.r1_every == 0:  # lazy R1 on real data, scaled by its interval
            real = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(d(real, c_real).sum(), real, create_graph=True)
            total_d = total_d + grad.pow(2).flatten(1).sum(1).mean() * (self.r1_gamma / 2) * self.r1_every
        opt_d.zero_grad()
        self.manual_backward(total_d)
        opt_d.step()  # one discriminator and one generator step per batch: Lightning's global_step counts both

        # generator: fool the discriminator (and, with aux_weight, the classifier's MSP)
        z = self.gan.sample_latent(len(x))
        aux = torch.zeros((), device=x.device)
        if self.aux_weight > 0:
            # conditions drawn from the real ones almost never ask a confident classifier for a low MSP
            # (0.2 % of digits' training images are below 0.9): half the batch asks for MSPs spread evenly
            # from chance to 1 instead, so the auxiliary term has low confidence to teach
            chance = 1.0 / self.gan.num_classes
            spread = chance + (1 - chance) * torch.rand(len(x), device=x.device)
            fake_msp = torch.where(torch.rand(len(x), device=x.device) < 0.5, spread, fake_msp)
            c_fake = self.gan.condition(fake_labels, fake_msp)
        fake = g(z, c_fake)
        loss_g = F.softplus(-d(translate(fake, self.max_shift), c_fake)).mean()
        if self.aux_weight > 0:
            aux = aux_loss(self.classifier(fake.reshape(len(x), *self.gan.output_shape)), fake_labels, fake_msp).mean()
        total = loss_g + self.aux_weight * aux
        if self.pl_weight > 0 and batch_idx % self.pl_every == 0:  # lazy, scaled
            total = total + self.path_length_penalty(c_fake) * self.pl_weight * self.pl_every
        self._check("the generator loss", total)
        opt_g.zero_grad()
        self.manual_backward(total)
        opt_g.step()
        self.gan.update_ema(self.ema_beta)

        self.last = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "aux": float(aux.detach())}
        self.first = self.first or self.last
        self.log_dict(self.last, prog_bar=True, on_step=True, on_epoch=False)


class StepLines(L.Callback):
    """Where no live bar can be drawn: a line with the losses at every quarter of the steps."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self._start = label, total, time.perf_counter()
        self._marks = {max(1, total * q // 4) for q in (1, 2, 3, 4)}

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step // 2  # manual optimisation: Lightning counts both optimisers' steps
        if step in self._marks:
            self._marks.discard(step)
            values = "  ".join(f"{k} {v:.4f}" for k, v in module.last.items())  # type: ignore[attr-defined]
            log.info("%s step %d/%d  %s  (%.1f s)", self.label, step, self.total, values,
                     time.perf_counter() - self._start)


class GANFit:
    """Fits a ConditionalGAN for `steps` generator steps; handed the frozen classifier by the store's caller.

    Checkpoints (Lightning's, optimiser states and EMA included) go to the store's `work_dir` for this
    entry every `checkpoint_every` steps: an interrupted run resumes there when the same command runs
    again, and a run that diverges keeps its last good checkpoint.

    `condition_class`: `predicted` conditions on the classifier's class, so that (class, MSP) is exactly
    what the classifier says of the image; `true` on the dataset's label (the seed paper's, on MNIST the same
    but for 1 % of images; on noisy data such as moons, a true label the classifier contradicts with high
    confidence is a condition no sample can satisfy)."""

    # 1: the auxiliary term became a Bernoulli KL (it was a squared error on the probability)
    # 2: batches drawn by EpochShuffle (a resumed run is the uninterrupted one: another data order than before)
    store_revision = 2

    def __init__(self, steps: int = 2000, batch_size: int = 128, lr_g: float = 2e-3, lr_d: float = 2e-3,
                 betas: tuple[float, float] = (0.0, 0.99), r1_gamma: float = 0.1, r1_every: int = 16,
                 ema_beta: float = 0.995, aux_weight: float = 0.0, condition_class: str = "predicted",
                 checkpoint_every: int = 500, mapping_lr_mult: float = 1.0, max_shift: int = 0,
                 pl_weight: float = 0.0, pl_every: int = 4) -> None:
        if condition_class not in ("predicted", "true"):
            raise UserError(f"condition_class={condition_class}: use predicted or true")
        self.steps, self.batch_size = int(steps), int(batch_size)
        self.aux_weight, self.condition_class = float(aux_weight), condition_class
        self.checkpoint_every = int(checkpoint_every)
        # what the LightningModule itself needs, handed on as is
        self.module_settings: dict[str, Any] = {
            "lr_g": float(lr_g), "lr_d": float(lr_d), "betas": tuple(float(b) for b in betas),
            "r1_gamma": float(r1_gamma), "r1_every": int(r1_every), "ema_beta": float(ema_beta),
            "aux_weight": self.aux_weight, "mapping_lr_mult": float(mapping_lr_mult), "max_shift": int(max_shift),
            "pl_weight": float(pl_weight), "pl_every": int(pl_every)}

    resumable = True  # the store hands `fit` a work_dir for checkpoints

    def fit(self, gan: ConditionalGAN, data: ArrayDataModule, trainer_cfg: DictConfig, seed: int, label: str, *,
            classifier: Any, work_dir: Path | None = None,
            train_probabilities: Callable[[], np.ndarray] | None = None, **_: Any) -> FitResult:
        if self.aux_weight > 0 and not isinstance(classifier, torch.nn.Module):
            raise UserError("uncertainty.aux_weight > 0 needs a torch classifier (its gradients); this one has none")
        if self.module_settings["pl_weight"] > 0 and not hasattr(gan.generator, "synthesis"):
            raise UserError("generator.fit.pl_weight > 0 needs a generator with a mapping and a synthesis network "
                            "(generator=stylegan2_lite); this one has none")
        train = data.split("train")
        # the runner's copy when it has one (kept in the classifier's store entry): the same numbers, computed once
        probs = np.asarray(train_probabilities() if train_probabilities is not None
                           else classifier.predict_proba(train.x))
        msp = torch.from_numpy(probs.max(1)).float()
        labels = torch.from_numpy(probs.argmax(1)) if self.condition_class == "predicted" else train.y
        loader = DataLoader(TensorDataset(train.x, labels, msp), batch_size=self.batch_size,
                            sampler=EpochShuffle(len(train), seed), drop_last=len(train) > self.batch_size,
                            generator=torch.Generator().manual_seed(seed))  # its own: it draws a seed per epoch
        module = GANModule(gan, classifier, **self.module_settings)
        torch.manual_seed(seed)
        # manual optimisation: Lightning's global step counts both optimisers' steps, two per batch
        callbacks: list[L.Callback] = [FitBar(label, self.steps, steps_per_batch=2) if interactive()
                                       else StepLines(label, self.steps)]
        last = None
        if work_dir is not None:
            # manual optimisation: Lightning's global_step counts each optimiser's step, two per batch
            callbacks.append(ModelCheckpoint(dirpath=work_dir, save_top_k=0, save_last=True,
                                             every_n_train_steps=2 * self.checkpoint_every))
            last = Path(work_dir) / "last.ckpt"
        resume = _resumable(last, module, label)
        if resume is not None:
            log.info("%s: resuming from its checkpoint %s", label, resume)
        trainer = build_trainer(trainer_cfg, -1, label, max_epochs=-1, max_steps=2 * self.steps, callbacks=callbacks,
                                enable_checkpointing=work_dir is not None, limit_train_batches=1.0,
                                limit_val_batches=0, num_sanity_val_steps=0)
        start = time.perf_counter()
        try:
            # a checkpoint is read as tensors and plain values only: nothing in the file runs
            with ctrl_c_passes_through():
                trainer.fit(module, train_dataloaders=loader, ckpt_path=resume, weights_only=True)
        except GANDiverged as exc:
            if last is not None and last.exists():
                step = torch.load(last, map_location="cpu", weights_only=True)["global_step"] // 2
                raise GANDiverged(f"{exc}; the last good checkpoint (step {step}) is kept in {last}") from None
            raise
        elapsed = time.perf_counter() - start
        gan.cpu().eval()
        return FitResult(elapsed, {"steps": trainer.global_step // 2,
                                   **{f"first_{k}": v for k, v in module.first.items()},
                                   **{f"final_{k}": v for k, v in module.last.items()}})


def _resumable(last: Path | None, module: L.LightningModule, label: str) -> Path | None:
    """`last` if it is a checkpoint of these very networks to resume from; a truncated, tampered or foreign
    one is discarded with a warning, and training starts afresh (it would otherwise fail every rerun)."""
    if last is None or not last.exists():
        return None
    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
        missing = {"state_dict", "global_step", "optimizer_states"} - set(checkpoint)
        if missing:
            raise ValueError(f"it has no {', '.join(sorted(missing))}")
        saved, own = checkpoint["state_dict"], module.state_dict()
        if set(saved) != set(own) or any(tuple(saved[k].shape) != tuple(own[k].shape) for k in own):
            raise ValueError("its networks are not these")
    except Exception as exc:  # unreadable, truncated, or not ours: nothing in it has been used
        log.warning("%s: cannot resume from %s (%s: %s); discarded, training starts afresh", label, last,
                    type(exc).__name__, first_line(exc))
        last.unlink()
        return None
    return last
