"""`xai counterfactual`: the smallest realistic change that makes a classifier say another class.

Pipeline: the classifier and the β-VAE from the model store → test images and their targets (by default
each image's second most likely class) → every chosen method (xai_cli.counterfactuals) → validity,
proximity, sparsity, realism and time per method → the grid figure and the report.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.counterfactuals.base import Context
from xai_cli.data.base import ArrayDataModule
from xai_cli.dig.realism import nearest_distance, reconstruction_error
from xai_cli.errors import UserError
from xai_cli.explainers.base import NotApplicable
from xai_cli.report.counterfactual_figures import counterfactual_grid
from xai_cli.analysis.result import RunDirResult
from xai_cli.report.document import Document
from xai_cli.report.writer import RunReport, atomic_write
from xai_cli.training.store import ModelStore, StoredModel, chosen, load_generator, to_device

log = logging.getLogger("xai")
CHANGED = 0.01  # a pixel counts as changed when it moves by more than this (on [0, 1])


def _target_class(setting: Any, num_classes: int) -> int | None:
    """The fixed target class `counterfactual.target` names, or None for 'second' (per image)."""
    if str(setting) == "second":
        return None
    try:
        t = int(setting)
    except ValueError:
        raise UserError(f"counterfactual.target={setting}: use 'second' or a class index") from None
    if not 0 <= t < num_classes:
        raise UserError(f"counterfactual.target={t} out of range: classes are 0..{num_classes - 1}")
    return t


def _targets(fixed: int | None, probs: np.ndarray) -> torch.Tensor:
    if fixed is None:  # each image's second most likely class: the nearest other decision
        return torch.from_numpy(np.argsort(-probs, axis=1)[:, 1].copy())
    return torch.full((len(probs),), fixed)


def _in_distribution(vae: Any, x: torch.Tensor) -> np.ndarray:
    """VAE reconstruction error (MSE per pixel) of each image: lower is more like the training data."""
    return reconstruction_error(x, vae.encode, vae.decode) ** 2  # the shared measure is an RMS


class CounterfactualRunner:
    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = cfg.counterfactual
        unknown = [m for m in s.methods if m not in s.registry]
        if unknown or not s.methods:
            raise UserError(f"counterfactual.methods: unknown {unknown or '(none chosen)'}; valid: "
                            f"{', '.join(s.registry)}")
        data: ArrayDataModule = instantiate(cfg.dataset)
        data.setup()
        if len(data.input_shape) != 3:
            raise UserError(f"xai counterfactual needs images; {data.name} has inputs of shape {data.input_shape}")
        fixed_target = _target_class(s.target, data.num_classes)  # bad settings fail before any training
        test, train = data.split("test"), data.split("train")
        idx = np.asarray(list(s.indices), dtype=int) if s.indices is not None else np.arange(min(int(s.n_images), len(test)))
        if ((idx < 0) | (idx >= len(test))).any():
            raise UserError(f"counterfactual.indices out of range: the test split has {len(test)} images")
        name = chosen("classifier")
        store = ModelStore(cfg.paths.model_dir)
        stored = to_device(store.get(name, cfg.classifier, data, cfg.dataset, cfg.trainer, int(cfg.seed)))
        model = stored.model
        stored_vae = load_generator(cfg, data)
        vae = stored_vae.model

        x = test.x[idx]
        probs = model.predict_proba(x)
        target = _targets(fixed_target, probs)
        needed = target != torch.from_numpy(probs.argmax(1))  # an image already in its target class needs no change
        ctx = Context(model, vae, train.x, data.num_classes, int(cfg.seed),
                      store=self._store_for(cfg, store, data, stored, stored_vae))

        results: dict[str, dict[str, Any]] = {}
        shown: dict[str, tuple[torch.Tensor | None, np.ndarray, list[str]]] = {}
        for m in s.methods:
            method = instantiate(s.registry[m], _recursive_=False)
            try:
                method.check(model)
            except NotApplicable as reason:
                results[m] = {"skipped": str(reason)}
                shown[m] = (None, np.zeros(len(x), bool), [""] * len(x))
                continue
            info = method.prepare(ctx)
            start = time.perf_counter()
            x_cf = method.generate(ctx, x[needed], target[needed])
            seconds = (time.perf_counter() - start) / max(int(needed.sum()), 1)
            full = x.clone()
            full[needed] = x_cf.to(full.dtype)
            results[m], valid, captions = self._measure(model, vae, train.x, x, full, target, needed, seconds)
            results[m].update(info)
            full[~torch.from_numpy(valid)] = x[~torch.from_numpy(valid)]  # what was not reached is not kept
            shown[m] = (full, valid, captions)
            log.info("%s: validity %.2f, L1 %.2f, %.4f s per counterfactual", m, results[m]["validity"],
                     results[m]["l1"] or 0, seconds)

        saved = {"indices": idx, "targets": target.numpy(), "originals": x.numpy()}
        for m, (cf, valid, _) in shown.items():
            if cf is not None:
                saved[m], saved[f"{m}_valid"] = cf.numpy(), valid
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **saved)
        atomic_write(report.run_dir / "counterfactuals.npz", buffer.getvalue())
        n = int(s.figure_images)  # the figure shows the first images; the npz holds all
        captions = [f"#{i} ŷ={p} → {int(t)}" for i, p, t in zip(idx[:n], probs.argmax(1)[:n], target[:n])]
        first = {m: (None if cf is None else cf[:n], valid[:n], cf_captions[:n])
                 for m, (cf, valid, cf_captions) in shown.items()}
        report.save_figure(counterfactual_grid(x[:n], captions, first, f"{name}: counterfactuals (grey: none found)"),
                           "counterfactuals")
        metrics = {
            "command": "counterfactual",
            "dataset": data.summary(),
            "seed": int(cfg.seed),
            "classifier": {"name": name, "accuracy": {"test": float((model.predict_proba(test.x).argmax(1)
                                                                      == test.y.numpy()).mean())},
                           "from_store": not stored.trained_now},
            "indices": idx.tolist(),
            "predicted": probs.argmax(1).tolist(),
            "targets": target.tolist(),
            "target_rule": str(s.target),
            "figure_images": int(s.figure_images),
            # the originals' scores: the scale against which the counterfactuals' realism reads
            "reference_in_distribution": float(_in_distribution(vae, x).mean()),
            "reference_nearest_train_rms": float(nearest_distance(x, train.x).mean()),
            "methods": results,
            "settings": {m: OmegaConf.to_container(s.registry[m], resolve=True) for m in s.methods},
        }
        report.write(metrics, self.render(metrics, report.run_dir))
        return metrics

    @staticmethod
    def _store_for(cfg: DictConfig, store: ModelStore, data: ArrayDataModule, classifier: StoredModel,
                   vae: StoredModel) -> Any:
        """Train-or-load for what a method learns against this classifier and this β-VAE: their store keys
        join the key, so retraining either retrains what was learned against it."""
        def get(model_cfg: DictConfig, fit_cfg: DictConfig) -> StoredModel:
            spec = OmegaConf.create({"model": OmegaConf.to_container(model_cfg, resolve=True),
                                     "fit": OmegaConf.to_container(fit_cfg, resolve=True),
                                     "against": {"classifier": classifier.key, "generator": vae.key}})
            return store.get(f"latent_rl_{classifier.name}", spec, data, cfg.dataset, cfg.trainer, int(cfg.seed),
                             context={"classifier": classifier.model, "vae": vae.model})
        return get

    @staticmethod
    def _measure(model: Any, vae: Any, train_x: torch.Tensor, x: torch.Tensor, x_cf: torch.Tensor,
                 target: torch.Tensor, needed: torch.Tensor,
                 seconds: float) -> tuple[dict[str, Any], np.ndarray, list[str]]:
        p = model.predict_proba(x_cf)
        valid = (p.argmax(1) == target.numpy()) & needed.numpy()
        delta = (x_cf - x).flatten(1)
        l1, l2 = delta.abs().sum(1).numpy(), delta.pow(2).sum(1).sqrt().numpy()
        sparsity = (delta.abs() > CHANGED).float().mean(1).numpy()
        realism = _in_distribution(vae, x_cf)
        # a second realism measure that no method optimises: latent_rl's outputs are VAE decodings, which the
        # VAE reconstructs well by construction, so in_distribution alone would flatter it
        nearest = nearest_distance(x_cf, train_x)

        def mean(v: np.ndarray) -> float | None:
            return float(v[valid].mean()) if valid.any() else None

        out = {"validity": float(valid.sum() / max(int(needed.sum()), 1)), "n": int(needed.sum()),
               "l1": mean(l1), "l2": mean(l2), "sparsity": mean(sparsity), "in_distribution": mean(realism),
               "nearest_train_rms": mean(nearest), "time_per_cf_s": seconds}
        captions = [f"{int(a)} ({q:.2f})" for a, q in zip(p.argmax(1), p.max(1))]
        return out, valid, captions

    @staticmethod
    def render(metrics: dict[str, Any], run_dir: Path) -> Document:
        ds, c = metrics["dataset"], metrics["classifier"]
        doc = Document(f"xai counterfactual — {ds['name']}, {c['name']}")
        rule = "its second most likely class" if metrics["target_rule"] == "second" else f"class {metrics['target_rule']}"
        doc.paragraph(f"For {len(metrics['indices'])} test images, the smallest change that makes {c['name']} "
                      f"(test accuracy {c['accuracy']['test']:.4f}) predict {rule}, by each method.")
        doc.table(["method", "validity", "L1", "L2", "sparsity", "in-distribution", "nearest training image",
                   "s / counterfactual"],
                  [[m, r["validity"], r["l1"], r["l2"], r["sparsity"], r["in_distribution"], r["nearest_train_rms"],
                    r["time_per_cf_s"]]
                   for m, r in metrics["methods"].items() if "validity" in r])
        for m, r in metrics["methods"].items():
            if "skipped" in r:
                doc.paragraph(f"{m}: not applicable to {c['name']} ({r['skipped']}).")
        doc.paragraph("Validity: share of images whose counterfactual the classifier assigns to the target. L1, L2: "
                      "size of the change; sparsity: share of pixels changed by more than 0.01; in-distribution: "
                      "the β-VAE's reconstruction error of the counterfactual (mean squared error per pixel; the "
                      f"original images score {metrics['reference_in_distribution']:.4f}); nearest training image: "
                      "RMS per pixel to the closest training image, a realism measure no method optimises (the "
                      f"originals score {metrics['reference_nearest_train_rms']:.4f}; latent_rl's decoded images "
                      "flatter the VAE-based score by construction) — all over valid counterfactuals. Time "
                      "excludes one-off training (the latent_rl actor, kept in the store). The counterfactuals are "
                      "saved in counterfactuals.npz ('<method>': (N, C, H, W), '<method>_valid', 'originals', "
                      "'indices', 'targets'); an image with no valid counterfactual holds the original.")
        doc.figure("figures/counterfactuals.png", f"The first {min(len(metrics['indices']), metrics['figure_images'])} "
                   "images, each row one (prediction → target); per method the "
                   "counterfactual with the classifier's answer and probability, and x′ − x (red: added, blue: "
                   "removed; each map scaled to its own largest change). Grey: none found within the method's "
                   "budget.", wide=True)
        return doc


class CounterfactualResult(RunDirResult):
    """A finished `xai counterfactual` run, re-rendered from its directory (its runner still writes the files itself)."""

    command = "counterfactual"
    runner = CounterfactualRunner
