"""`xai train`: fill the model store and report accuracy, size, cost and agreement of the models."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from xai_cli.data.base import ArrayDataModule
from xai_cli.metrics.classification import accuracy, confusion, disagreement_matrix, pairwise_disagreement
from xai_cli.report.document import Document
from xai_cli.report.figures import confusion_figure, heatmap
from xai_cli.report.writer import RunReport
from xai_cli.training.store import load_classifiers
from xai_cli.utils.progress import track

log = logging.getLogger("xai")


class TrainRunner:
    def __init__(self, splits: Sequence[str] = ("train", "val", "test")) -> None:
        self.splits = list(splits)

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        data: ArrayDataModule = instantiate(cfg.dataset)
        data.setup()
        models = load_classifiers(cfg, data)

        test = data.split("test")
        results: dict[str, Any] = {}
        test_predictions: dict[str, np.ndarray] = {}
        for name, stored in track(models.items(), "evaluating models", total=len(models)):
            accuracies = {}
            for split in self.splits:
                part = data.split(split)  # type: ignore[arg-type]
                probs = stored.model.predict_proba(part.x)
                accuracies[split] = accuracy(probs, part.y.numpy())
                if split == "test":
                    test_predictions[name] = probs.argmax(1)
                    cm = confusion(probs, test.y.numpy(), data.num_classes)
                    report.save_figure(confusion_figure(cm, data.class_names, f"{name}: test confusion (colour: errors)"),
                                       f"confusion_{name}")
            results[name] = {
                "accuracy": accuracies,
                "params": stored.model.num_parameters(),
                "train_time_s": stored.meta["fit"]["train_time_s"],
                "from_store": not stored.trained_now,
                "store_entry": stored.path.name,
            }
            log.info("%s: %s", name, "  ".join(f"{s} {a:.4f}" for s, a in accuracies.items()))

        if len(test_predictions) > 1:
            names = list(test_predictions)
            matrix = disagreement_matrix(test_predictions)
            report.save_figure(heatmap(matrix, names, names, "test-set disagreement (share of images)",
                                       mask_diagonal=True),
                               "disagreement")
        metrics = {
            "command": "train",
            "dataset": data.summary(),
            "seed": int(cfg.seed),
            "models": results,
            "disagreement": pairwise_disagreement(test_predictions),
        }
        report.write(metrics, self.render(metrics, report.run_dir))
        return metrics

    @staticmethod
    def render(metrics: dict[str, Any], run_dir: Path) -> Document:
        ds = metrics["dataset"]
        doc = Document(f"xai train — {ds['name']}")
        sizes = ", ".join(f"{k} {v:,}" for k, v in ds["sizes"].items())
        doc.paragraph(f"Dataset {ds['name']} ({sizes} images of shape {tuple(ds['input_shape'])}, "
                      f"{ds['num_classes']} classes); seed {metrics['seed']}.")
        doc.heading("Models")
        splits = list(next(iter(metrics["models"].values()))["accuracy"]) if metrics["models"] else []
        rows = []
        for name, m in metrics["models"].items():
            rows.append([name, *(m["accuracy"][s] for s in splits), m["params"], f"{m['train_time_s']:.1f}",
                         "store" if m["from_store"] else "trained now"])
        doc.table(["model", *(f"{s} acc." for s in splits), "parameters", "train time (s)", "source"], rows)
        if metrics["disagreement"]:
            doc.heading("Where the models disagree")
            doc.paragraph("Share of test images that two models label differently. Models of equal accuracy "
                          "can still disagree on many images: `xai discrepancy` shows where.")
            doc.table(["pair", "disagreement"], [[k.replace("|", " vs "), v] for k, v in metrics["disagreement"].items()])
            if (run_dir / "figures/disagreement.png").is_file():
                doc.figure("figures/disagreement.png", "Pairwise test-set disagreement.")
        doc.heading("Confusion matrices (test)")
        for name in metrics["models"]:
            path = f"figures/confusion_{name}.png"
            if (run_dir / path).is_file():
                doc.figure(path, f"{name}: rows are true classes, columns predictions.")
        return doc
