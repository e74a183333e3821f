"""`xai explain`: attributions for chosen images x explainers x classifiers, measured and drawn."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.analysis.context import Model, RunContext, specs_from
from xai_cli.analysis.result import AnalysisResult, read_settings, save_result
from xai_cli.analysis.train import source_of
from xai_cli.errors import UserError
from xai_cli.explainers.base import Explainer, NotApplicable, probability_function, settings_of
from xai_cli.metrics.faithfulness import deletion_insertion
from xai_cli.metrics.randomization import rank_similarity
from xai_cli.metrics.stability import local_lipschitz
from xai_cli.models.classifiers.base import Classifier
from xai_cli.report.attribution_figures import attribution_grid, time_vs_faithfulness
from xai_cli.report.document import Document
from xai_cli.report.writer import RunReport
from xai_cli.utils.progress import track

log = logging.getLogger("xai")

TARGETS = ("predicted", "true")


@dataclass(frozen=True)
class Faithfulness:
    steps: int = 20        # points on the deletion/insertion curves
    baseline: float = 0.0  # value of a removed pixel (black: digits are white on black)


@dataclass(frozen=True)
class Stability:
    n_images: int = 4      # images on which the local Lipschitz estimate is taken
    n_samples: int = 4     # noisy copies per image
    sigma: float = 0.01    # std of the Gaussian noise on [0,1] pixels


@dataclass(frozen=True)
class Randomization:
    n_images: int = 8      # images explained again on the same architecture with random weights


@dataclass(frozen=True)
class ExplainSettings:
    """What `xai explain` explains and how it measures the explanations (the CLI's `explain.*`)."""

    n_images: int = 16
    indices: Sequence[int] | None = None
    target: str = "predicted"
    background_size: int = 64
    faithfulness: Faithfulness = field(default_factory=Faithfulness)
    stability: Stability = field(default_factory=Stability)
    randomization: Randomization = field(default_factory=Randomization)

    def __post_init__(self) -> None:
        target = "true" if self.target is True else str(self.target).lower()  # YAML reads `true` as a bool
        if target not in TARGETS:
            raise UserError(f"explain.target={self.target}: choose one of {', '.join(TARGETS)}")
        object.__setattr__(self, "target", target)

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "ExplainSettings":
        plain = dict(settings)
        nested = {"faithfulness": Faithfulness, "stability": Stability, "randomization": Randomization}
        for key, kind in nested.items():
            if isinstance(plain.get(key), Mapping):
                plain[key] = read_settings(kind, plain[key], f"explain.{key}")
        return read_settings(cls, plain, "explain")


@dataclass
class ExplainResult(AnalysisResult):
    """Per explainer and model: time per image, deletion/insertion AUC, stability, randomisation similarity.

    `attributions` are the maps, keyed "<model>/<explainer>", each (N, H, W), with "indices" and "labels".
    """

    command = "explain"

    @property
    def attributions(self) -> dict[str, np.ndarray]:
        return self.array_file("attributions.npz")

    def render(self) -> Document:
        return render(self.metrics, self.has_figure)


def _timed_explain(explainer: Explainer, model: Any, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Attributions and the median seconds per image over the explainer's batches (model calls included)."""
    maps, per_image = [], []
    for i in range(0, len(x), explainer.batch_size):
        start = time.perf_counter()
        maps.append(explainer.explain(model, x[i : i + explainer.batch_size], target[i : i + explainer.batch_size]))
        per_image.append((time.perf_counter() - start) / len(maps[-1]))
    return torch.cat(maps), statistics.median(per_image)


def explain_models(ctx: RunContext, models: Mapping[str, Model], explainers: Mapping[str, Explainer],
                   settings: ExplainSettings) -> ExplainResult:
    """Every explainer on every model for the chosen test images, each measured; figures drawn."""
    if not explainers:
        raise UserError("no explainers selected: e.g. explainers=[integrated_gradients,lime]")
    ctx.require_images("explain")
    data, s = ctx.data, settings
    test = data.split("test")
    idx = ctx.indices(s.indices, s.n_images, "explain.indices")
    x, y = test.x[idx], test.y[idx]
    background = ctx.background(s.background_size)
    use_true = s.target == "true"

    result = ExplainResult(metrics={})
    results: dict[str, dict[str, Any]] = {name: {} for name in explainers}
    saved: dict[str, np.ndarray] = {"indices": idx, "labels": y.numpy()}
    predictions: dict[str, Any] = {}
    for model_name, model in models.items():
        probs = model.classifier.predict_proba(x)
        target = y if use_true else torch.from_numpy(probs.argmax(1))
        predictions[model_name] = {"predicted": probs.argmax(1).tolist(),
                                   "probability": probs.max(1).round(4).tolist(), "target": target.tolist()}
        maps = _explain_model(ctx, s, model, explainers, background, x, target, results)
        saved.update({f"{model_name}/{name}": m.numpy() for name, m in maps.items() if m is not None})
        names = data.class_names
        titles = [f"#{i} y={names[int(t)]} ŷ={names[p]} ({q:.2f})" for i, t, p, q in
                  zip(idx, y, predictions[model_name]["predicted"], predictions[model_name]["probability"])]
        result.add_figure(attribution_grid(x, maps, titles, f"{model_name}: attributions for the "
                                           f"{'true' if use_true else 'predicted'} class"), f"attributions_{model_name}")

    result.arrays["attributions.npz"] = saved
    points = {m: {e: (r[m]["time_per_image_s"], r[m]["deletion_auc"]) for e, r in results.items()
                  if "deletion_auc" in r.get(m, {})} for m in models}
    result.add_figure(time_vs_faithfulness(points), "time_vs_deletion")
    result.metrics = {
        "command": "explain",
        "dataset": data.summary(),
        "seed": ctx.seed,
        "target": s.target,
        "indices": idx.tolist(),
        "models": {m: {"accuracy": {"test": ctx.accuracy(model)}, **model.describe()}
                   for m, model in models.items()},
        "predictions": predictions,
        "settings": {"background_size": int(s.background_size), "faithfulness": asdict(s.faithfulness),
                     "stability": asdict(s.stability), "randomization": asdict(s.randomization),
                     "explainers": {n: {"method": type(e).__name__, **settings_of(e)} for n, e in explainers.items()}},
        "explainers": results,
    }
    return result


def _explain_model(ctx: RunContext, s: ExplainSettings, model: Model, explainers: Mapping[str, Explainer],
                   background: torch.Tensor, x: torch.Tensor, target: torch.Tensor,
                   results: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor | None]:
    """Every explainer on one model: maps (None where not applicable), measurements into `results`."""
    random_model = model.random_copy(ctx.seed + 10_000)
    maps: dict[str, torch.Tensor | None] = {}
    classifier = model.classifier
    for name, explainer in track(explainers.items(), f"{model.name}: explaining", total=len(explainers)):
        try:
            explainer.check(classifier)
        except NotApplicable as reason:
            results[name][model.name] = {"skipped": str(reason)}
            maps[name] = None
            continue
        explainer.set_background(background)

        def explain_and_measure(explainer: Explainer = explainer) -> tuple[np.ndarray, dict[str, Any]]:
            # sampling methods (captum's gradient_shap) draw from torch's and numpy's global generators: seeded
            # per model and method, a model's attributions do not depend on which came before it
            torch.manual_seed(ctx.seed)
            np.random.seed(ctx.seed)
            start = time.perf_counter()
            found, seconds = _timed_explain(explainer, classifier, x, target)
            result = _measure(s, explainer, classifier, random_model, x, target, found, seconds, ctx.seed)
            result["wall_time_s"] = time.perf_counter() - start
            return found.numpy(), result

        # a stored model's maps and their measurements are kept in its entry: a warm rerun reads them (their
        # times are those of the run that computed them, and the report says so)
        found, result, kept = ctx.measured_explanations(model, explainer, x, target, ctx.seed,
                                                        _measures(s, random_model is not None), explain_and_measure)
        maps[name] = torch.from_numpy(found)
        results[name][model.name] = {**result, "kept": kept}
        log.info("%s / %s: %.1f s (%.4f s per image, then the measurements)%s", model.name, name,
                 result["wall_time_s"], result["time_per_image_s"], ", read from the store" if kept else "")
    return maps


def _measures(s: ExplainSettings, randomised: bool) -> dict[str, Any]:
    """How the maps are measured (beside which explainer, images and seed): what keeps a stored result apart."""
    return {"faithfulness": asdict(s.faithfulness), "stability": asdict(s.stability),
            "randomization": asdict(s.randomization) if randomised else None}


def _measure(s: ExplainSettings, explainer: Explainer, model: Classifier, random_model: Classifier | None,
             x: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, seconds: float, seed: int) -> dict[str, Any]:
    probability = probability_function(model)

    def predict(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([probability(batch[i : i + 2048]) for i in range(0, len(batch), 2048)]).cpu().numpy()

    f = s.faithfulness
    deletion, insertion = deletion_insertion(predict, x, maps, target, int(f.steps), float(f.baseline))
    deletion_r, insertion_r = deletion_insertion(predict, x, maps, target, int(f.steps), float(f.baseline),
                                                 random_order=True, seed=seed)
    k = min(int(s.stability.n_images), len(x))
    stability = local_lipschitz(lambda xs, ts: explainer.explain(model, xs, ts), x[:k], target[:k],
                                int(s.stability.n_samples), float(s.stability.sigma), seed)
    out = {
        "time_per_image_s": seconds,
        "deletion_auc": float(deletion.mean()),
        "insertion_auc": float(insertion.mean()),
        "deletion_auc_random": float(deletion_r.mean()),
        "insertion_auc_random": float(insertion_r.mean()),
        "stability": float(stability.mean()),
        "randomization_similarity": None,
    }
    if random_model is not None:
        r = min(int(s.randomization.n_images), len(x))
        out["randomization_similarity"] = rank_similarity(maps[:r], explainer.explain(random_model, x[:r], target[:r]))
    return out


class ExplainRunner:
    """The CLI's `xai explain`: the configured classifiers and explainers, settings from `explain.*`."""

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        settings = ExplainSettings.of(OmegaConf.to_container(cfg.explain, resolve=True))  # type: ignore[arg-type]
        if not cfg.explainers:
            raise UserError("no explainers selected: e.g. explainers=[integrated_gradients,lime]")
        ctx = RunContext.from_config(cfg)
        ctx.require_images("explain")
        ctx.indices(settings.indices, settings.n_images, "explain.indices")  # before anything trains
        models = ctx.trained(specs_from(cfg.classifiers))
        explainers: dict[str, Explainer] = {name: instantiate(e) for name, e in cfg.explainers.items()}
        result = explain_models(ctx, models, explainers, settings)
        save_result(result, report.run_dir)
        return result.metrics


def render(metrics: dict[str, Any], has_figure: Any) -> Document:
    """The explain report from its metrics; `has_figure(path)` says which figures exist."""
    ds = metrics["dataset"]
    doc = Document(f"xai explain — {ds['name']}")
    models = list(metrics["models"])
    doc.paragraph(f"{len(metrics['indices'])} test images of {ds['name']}, explained for the "
                  f"{metrics['target']} class by {len(metrics['explainers'])} methods on {len(models)} models "
                  f"(seed {metrics['seed']}). Red marks evidence for the class, blue against; each map is "
                  "scaled to its own largest value.")
    doc.table(["model", "test accuracy", "source"],
              [[m, v["accuracy"]["test"], source_of(v)]
               for m, v in metrics["models"].items()])
    doc.heading("Measurements")
    doc.paragraph("Deletion AUC: area under the class probability as the most important pixels are removed "
                  "(lower is more faithful); insertion AUC: as they are inserted into a blank image (higher is "
                  "better); both beside a random pixel order. Stability: local Lipschitz estimate of the "
                  "normalised map under Gaussian noise of σ = "
                  f"{metrics['settings']['stability']['sigma']} (lower is stabler). Randomisation: rank "
                  "correlation with the maps of the same architecture with random weights (high means the "
                  "method ignores what the model learned).")
    rows, skipped = [], {}
    for name, by_model in metrics["explainers"].items():
        for m in models:
            r = by_model.get(m, {})
            if "skipped" in r:
                skipped.setdefault((m, r["skipped"]), []).append(name)
                continue
            seconds = f"{r['time_per_image_s']:.4f}" + (" *" if r.get("kept") else "")
            rows.append([name, m, seconds, r["deletion_auc"], r["deletion_auc_random"], r["insertion_auc"],
                         r["insertion_auc_random"], r["stability"],
                         "n/a" if r["randomization_similarity"] is None else r["randomization_similarity"]])
    doc.table(["explainer", "model", "s / image", "deletion AUC", "random", "insertion AUC", "random",
               "stability", "randomisation"], rows)
    if any(r.get("kept") for by_model in metrics["explainers"].values() for r in by_model.values()):
        doc.paragraph("* Read from the model's store entry: maps and measurements an earlier run computed with "
                      "the same explainer, settings, images and seed; the time is that run's.")
    for (m, reason), names in skipped.items():
        doc.paragraph(f"Not applicable to {m}: {', '.join(names)} ({reason}).")
    doc.paragraph("Reading the randomisation column: methods that multiply by the input from a black "
                  "baseline (integrated gradients, DeepLIFT) give exactly 0 on black background pixels for "
                  "any weights, which by itself raises their rank correlation with a random model.")
    if has_figure("figures/time_vs_deletion.png"):
        doc.figure("figures/time_vs_deletion.png", "Cost against faithfulness, one point per explainer.")
    doc.heading("Attributions")
    for m in models:
        path = f"figures/attributions_{m}.png"
        if has_figure(path):
            doc.figure(path, f"{m}: each row an image (true label y, prediction ŷ and its probability), "
                             "each column a method.")
    doc.heading("Settings")
    doc.table(["explainer", "settings"], [[n, ", ".join(f"{k}={v}" for k, v in e.items())]
                                          for n, e in metrics["settings"]["explainers"].items()])
    doc.paragraph(f"Background (reference) images: {metrics['settings']['background_size']} random training "
                  "images. Attributions are saved in attributions.npz (key '<model>/<explainer>', arrays "
                  "(N, H, W), with 'indices' and 'labels').")
    return doc
