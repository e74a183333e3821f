"""`xai train`: fill the model store and report accuracy, size, cost and agreement of the models."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from omegaconf import DictConfig

from xai_cli.analysis.context import Model, RunContext, specs_from
from xai_cli.analysis.result import AnalysisResult, save_result
from xai_cli.metrics.classification import accuracy, confusion, disagreement_matrix, pairwise_disagreement
from xai_cli.models.classifiers.base import Classifier
from xai_cli.report.document import Document
from xai_cli.report.figures import confusion_figure, heatmap
from xai_cli.report.writer import RunReport
from xai_cli.utils.progress import track

log = logging.getLogger("xai")

SPLITS = ("train", "val", "test")


@dataclass
class TrainResult(AnalysisResult):
    """The models' accuracy per split, size, training time, confusion and pairwise disagreement.

    `models` holds the classifiers themselves (from the store or trained now), ready to hand to the other
    analyses; they are not part of the saved run (the store keeps them).
    """

    command = "train"
    models: dict[str, Classifier] = field(default_factory=dict, repr=False)

    def render(self) -> Document:
        metrics = self.metrics
        ds = metrics["dataset"]
        doc = Document(f"xai train — {ds['name']}")
        sizes = ", ".join(f"{k} {v:,}" for k, v in ds["sizes"].items())
        doc.paragraph(f"Dataset {ds['name']} ({sizes} images of shape {tuple(ds['input_shape'])}, "
                      f"{ds['num_classes']} classes); seed {metrics['seed']}.")
        doc.heading("Models")
        splits = list(next(iter(metrics["models"].values()))["accuracy"]) if metrics["models"] else []
        rows = []
        for name, m in metrics["models"].items():
            seconds = m.get("train_time_s")
            rows.append([name, *(m["accuracy"][s] for s in splits), m["params"],
                         "—" if seconds is None else f"{seconds:.1f}", source_of(m)])
        doc.table(["model", *(f"{s} acc." for s in splits), "parameters", "train time (s)", "source"], rows)
        if metrics["disagreement"]:
            doc.heading("Where the models disagree")
            doc.paragraph("Share of test images that two models label differently. Models of equal accuracy "
                          "can still disagree on many images: `xai discrepancy` shows where.")
            doc.table(["pair", "disagreement"], [[k.replace("|", " vs "), v] for k, v in metrics["disagreement"].items()])
            if self.has_figure("figures/disagreement.png"):
                doc.figure("figures/disagreement.png", "Pairwise test-set disagreement.")
        doc.heading("Confusion matrices (test)")
        for name in metrics["models"]:
            path = f"figures/confusion_{name}.png"
            if self.has_figure(path):
                doc.figure(path, f"{name}: rows are true classes, columns predictions.")
        return doc


def source_of(model_metrics: dict[str, Any]) -> str:
    """How a report names where a model came from (runs before `source` existed only had `from_store`); a
    model from a file by its file and format."""
    if model_metrics.get("file"):
        return f"{Path(model_metrics['file']).name} ({model_metrics.get('format', 'file')})"
    return model_metrics.get("source") or ("store" if model_metrics["from_store"] else "trained now")


def evaluate(ctx: RunContext, models: dict[str, Model], splits: Sequence[str] = SPLITS) -> TrainResult:
    """Accuracy on each split, size, training time and confusion of every model; disagreement between them."""
    data = ctx.data
    test = data.split("test")
    result = TrainResult(metrics={}, models={name: m.classifier for name, m in models.items()})
    results: dict[str, Any] = {}
    test_predictions: dict[str, np.ndarray] = {}
    for name, model in track(models.items(), "evaluating models", total=len(models)):
        accuracies = {}
        for split in splits:
            part = data.split(split)  # type: ignore[arg-type]
            probs = ctx.probabilities(model, split)  # a warm entry keeps them
            accuracies[split] = accuracy(probs, part.y.numpy())
            if split == "test":
                test_predictions[name] = probs.argmax(1)
                cm = confusion(probs, test.y.numpy(), data.num_classes)
                result.add_figure(confusion_figure(cm, data.class_names, f"{name}: test confusion (colour: errors)"),
                                  f"confusion_{name}")
        results[name] = {
            "accuracy": accuracies,
            "params": model.classifier.num_parameters(),
            "train_time_s": model.stored.meta["fit"]["train_time_s"] if model.stored else None,
            **model.describe(),
        }
        log.info("%s: %s", name, "  ".join(f"{s} {a:.4f}" for s, a in accuracies.items()))

    if len(test_predictions) > 1:
        names = list(test_predictions)
        matrix = disagreement_matrix(test_predictions)
        result.add_figure(heatmap(matrix, names, names, "test-set disagreement (share of images)", mask_diagonal=True),
                          "disagreement")
    result.metrics = {
        "command": "train",
        "dataset": data.summary(),
        "seed": ctx.seed,
        "models": results,
        "disagreement": pairwise_disagreement(test_predictions),
    }
    return result


class TrainRunner:
    """The CLI's `xai train`: the configured classifiers from the store (trained there if missing), evaluated."""

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        ctx = RunContext.from_config(cfg)
        result = evaluate(ctx, ctx.trained(specs_from(cfg.classifiers)), list(cfg.train.splits))
        save_result(result, report.run_dir)
        return result.metrics
