"""`xai counterfactual`: the smallest realistic change that makes a classifier say another class.

Pipeline: the classifier and the β-VAE from the model store → test images and their targets (by default
each image's second most likely class) → every chosen method (xai_cli.counterfactuals) → validity,
proximity, sparsity, realism and time per method → the grid figure and the report.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.analysis.context import Model, ModelSpec, RunContext
from xai_cli.analysis.result import AnalysisResult, read_settings, save_result
from xai_cli.counterfactuals.base import Context
from xai_cli.dig.realism import nearest_distance, reconstruction_error
from xai_cli.errors import UserError
from xai_cli.explainers.base import NotApplicable
from xai_cli.report.counterfactual_figures import counterfactual_grid
from xai_cli.models.adapters import fingerprint
from xai_cli.report.document import Document
from xai_cli.report.writer import RunReport
from xai_cli.training.store import ModelStore, StoredModel, chosen

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


@dataclass(frozen=True)
class CounterfactualSettings:
    """Which images and which targets (the CLI's `counterfactual.*`; the methods are the `methods` set)."""

    n_images: int = 8
    indices: Sequence[int] | None = None
    figure_images: int = 12
    target: str | int = "second"

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "CounterfactualSettings":
        return read_settings(cls, settings, "counterfactual")


@dataclass
class CounterfactualResult(AnalysisResult):
    """Per method: validity, L1/L2 proximity, sparsity, in-distribution score and time; the grid figure.

    `counterfactuals` holds the arrays of counterfactuals.npz: '<method>' (N, C, H, W), '<method>_valid',
    'originals', 'indices', 'targets'.
    """

    command = "counterfactual"

    @property
    def counterfactuals(self) -> dict[str, np.ndarray]:
        return self.array_file("counterfactuals.npz")

    def render(self) -> Document:
        return render(self.metrics, self.has_figure)


def build_methods(methods: DictConfig) -> dict[str, Any]:
    """The chosen methods (the `methods` set: configs/counterfactual_method/), built by name."""
    if not methods:
        raise UserError("no counterfactual method chosen: e.g. 'methods=[wachter,latent_rl]'")
    return {str(m): instantiate(methods[m], _recursive_=False) for m in methods}


def check_inputs(ctx: RunContext, s: CounterfactualSettings) -> int | None:
    """What can be refused before anything trains; returns the fixed target class (None: each image's second)."""
    ctx.require_images("counterfactual")
    fixed = _target_class(s.target, ctx.data.num_classes)
    ctx.indices(s.indices, s.n_images, "counterfactual.indices")
    return fixed


def find_counterfactuals(ctx: RunContext, model: Model, vae_spec: ModelSpec, methods: Mapping[str, Any],
                         s: CounterfactualSettings, method_settings: Mapping[str, Any]) -> CounterfactualResult:
    """Every method's counterfactuals for the chosen test images, measured; `method_settings` are reported."""
    fixed_target = check_inputs(ctx, s)
    data = ctx.data
    test, train = data.split("test"), data.split("train")
    idx = ctx.indices(s.indices, s.n_images, "counterfactual.indices")
    classifier = model.classifier
    stored_vae = ctx.fetch(vae_spec)
    vae = stored_vae.model

    x = test.x[idx]
    probs = classifier.predict_proba(x)
    target = _targets(fixed_target, probs)
    needed = target != torch.from_numpy(probs.argmax(1))  # an image already in its target class needs no change
    with tempfile.TemporaryDirectory(prefix="xai-unstored-") as scratch:
        method_ctx = Context(classifier, vae, train.x, data.num_classes, ctx.seed,
                             store=_learner_store(ctx, model, stored_vae, Path(scratch)))

        def kept(method: Any, xs: torch.Tensor, ts: torch.Tensor,
                 compute: Callable[[], tuple[np.ndarray, dict[str, Any]]]) -> tuple[np.ndarray, dict[str, Any], bool]:
            return ctx.kept_counterfactuals(model, method, xs, ts, {"generator": stored_vae.key}, compute)

        results, shown = _run_methods(methods, method_ctx, classifier, vae, train.x, x, target, needed,
                                      data.class_names, kept)

    result = CounterfactualResult(metrics={})
    saved = {"indices": idx, "targets": target.numpy(), "originals": x.numpy()}
    for m, (cf, valid, _) in shown.items():
        if cf is not None:
            saved[m], saved[f"{m}_valid"] = cf.numpy(), valid
    result.arrays["counterfactuals.npz"] = saved
    n = int(s.figure_images)  # the figure shows the first images; the npz holds all
    names = data.class_names
    captions = [f"#{i} ŷ={names[p]} → {names[int(t)]}" for i, p, t in zip(idx[:n], probs.argmax(1)[:n], target[:n])]
    first = {m: (None if cf is None else cf[:n], valid[:n], cf_captions[:n])
             for m, (cf, valid, cf_captions) in shown.items()}
    result.add_figure(counterfactual_grid(x[:n], captions, first, f"{model.name}: counterfactuals (grey: none found)"),
                      "counterfactuals")
    result.metrics = {
        "command": "counterfactual",
        "dataset": data.summary(),
        "seed": ctx.seed,
        "classifier": {"name": model.name, "accuracy": {"test": ctx.accuracy(model)}, **model.describe()},
        "indices": idx.tolist(),
        "predicted": probs.argmax(1).tolist(),
        "targets": target.tolist(),
        "target_rule": str(s.target),
        "figure_images": int(s.figure_images),
        # the originals' scores: the scale against which the counterfactuals' realism reads
        "reference_in_distribution": float(_in_distribution(vae, x).mean()),
        "reference_nearest_train_rms": float(nearest_distance(x, train.x).mean()),
        "methods": results,
        "settings": dict(method_settings),
    }
    return result


def _run_methods(methods: Mapping[str, Any], ctx: Context, classifier: Any, vae: Any, train_x: torch.Tensor,
                 x: torch.Tensor, target: torch.Tensor, needed: torch.Tensor, class_names: Sequence[str],
                 kept: Callable[..., tuple[np.ndarray, dict[str, Any], bool]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each method's counterfactuals of the images that need one, measured; `kept` answers from the store
    what an earlier run found for the same question (computing and keeping it otherwise)."""
    results: dict[str, dict[str, Any]] = {}
    shown: dict[str, tuple[torch.Tensor | None, np.ndarray, list[str]]] = {}
    for m, method in methods.items():
        try:
            method.check(classifier)
        except NotApplicable as reason:
            results[m] = {"skipped": str(reason)}
            shown[m] = (None, np.zeros(len(x), bool), [""] * len(x))
            continue
        info = method.prepare(ctx)

        def generate(method: Any = method) -> tuple[np.ndarray, dict[str, Any]]:
            start = time.perf_counter()
            found = method.generate(ctx, x[needed], target[needed])
            return found.detach().cpu().numpy(), {"seconds": (time.perf_counter() - start) / max(int(needed.sum()), 1)}

        x_cf, record, from_store = kept(method, x[needed], target[needed], generate)
        full = x.clone()
        full[needed] = torch.from_numpy(x_cf).to(full.dtype)
        results[m], valid, captions = _measure(classifier, vae, train_x, x, full, target, needed,
                                               float(record["seconds"]), class_names)
        results[m].update(info)
        results[m]["kept"] = from_store
        full[~torch.from_numpy(valid)] = x[~torch.from_numpy(valid)]  # what was not reached is not kept
        shown[m] = (full, valid, captions)
        log.info("%s: validity %.2f, L1 %.2f, %.4f s per counterfactual%s", m, results[m]["validity"],
                 results[m]["l1"] or 0, record["seconds"], ", read from the store" if from_store else "")
    return results, shown


def _learner_store(ctx: RunContext, model: Model, vae: StoredModel, scratch: Path) -> Any:
    """Train-or-load for what a method learns against this classifier and this β-VAE: their identities join
    the key, so retraining either retrains what was learned against it. A model with no identity (a plain
    callable) gets a scratch store that disappears with the run."""
    identity = model.stored.key if model.stored is not None else fingerprint(model.classifier)
    store = ctx.store if identity is not None else ModelStore(scratch)
    label = model.spec.name if model.spec is not None else model.name

    def get(model_cfg: DictConfig, fit_cfg: DictConfig) -> StoredModel:
        spec = OmegaConf.create({"model": OmegaConf.to_container(model_cfg, resolve=True),
                                 "fit": OmegaConf.to_container(fit_cfg, resolve=True),
                                 "against": {"classifier": identity, "generator": vae.key}})
        return store.get(f"latent_rl_{label}", spec, ctx.data, ctx.dataset_cfg, ctx.trainer, ctx.seed,
                         context={"classifier": model.classifier, "vae": vae.model,
                                  "train_probabilities": lambda: ctx.train_probabilities(model)})
    return get


class CounterfactualRunner:
    """The CLI's `xai counterfactual`: the configured classifier, β-VAE and methods (`methods=[...]`)."""

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = CounterfactualSettings.of(OmegaConf.to_container(cfg.counterfactual, resolve=True))  # type: ignore[arg-type]
        methods = build_methods(cfg.methods)
        ctx = RunContext.from_config(cfg)
        check_inputs(ctx, s)  # bad settings fail before any training
        spec = ModelSpec(chosen("classifier"), cfg.classifier)
        model = ctx.trained([spec])[spec.name]
        method_settings = {m: OmegaConf.to_container(cfg.methods[m], resolve=True) for m in methods}
        result = find_counterfactuals(ctx, model, ModelSpec(chosen("generator"), cfg.generator), methods, s,
                                      method_settings)
        save_result(result, report.run_dir)
        return result.metrics


def _measure(model: Any, vae: Any, train_x: torch.Tensor, x: torch.Tensor, x_cf: torch.Tensor,
             target: torch.Tensor, needed: torch.Tensor, seconds: float,
             class_names: Sequence[str]) -> tuple[dict[str, Any], np.ndarray, list[str]]:
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
    captions = [f"{class_names[int(a)]} ({q:.2f})" for a, q in zip(p.argmax(1), p.max(1))]
    return out, valid, captions

def render(metrics: dict[str, Any], has_figure: Any) -> Document:
    """The counterfactual report from its metrics; `has_figure(path)` says which figures exist."""
    ds, c = metrics["dataset"], metrics["classifier"]
    doc = Document(f"xai counterfactual — {ds['name']}, {c['name']}")
    rule = "its second most likely class" if metrics["target_rule"] == "second" else f"class {metrics['target_rule']}"
    doc.paragraph(f"For {len(metrics['indices'])} test images, the smallest change that makes {c['name']} "
                  f"(test accuracy {c['accuracy']['test']:.4f}) predict {rule}, by each method.")
    doc.table(["method", "validity", "L1", "L2", "sparsity", "in-distribution", "nearest training image",
               "s / counterfactual"],
              [[m, r["validity"], r["l1"], r["l2"], r["sparsity"], r["in_distribution"], r["nearest_train_rms"],
                f"{r['time_per_cf_s']:.4g}" + (" *" if r.get("kept") else "")]
               for m, r in metrics["methods"].items() if "validity" in r])
    if any(r.get("kept") for r in metrics["methods"].values()):
        doc.paragraph("* Read from the classifier's store entry: what an earlier run found with the same method, "
                      "settings, images, targets, seed and generator; the time is that run's.")
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
