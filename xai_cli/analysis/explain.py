"""`xai explain`: attributions for chosen images x explainers x classifiers, measured and drawn."""

from __future__ import annotations

import io
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.data.base import ArrayDataModule
from xai_cli.errors import UserError
from xai_cli.explainers.base import Explainer, NotApplicable, probability_function, settings_of
from xai_cli.metrics.faithfulness import deletion_insertion
from xai_cli.metrics.randomization import rank_similarity
from xai_cli.metrics.stability import local_lipschitz
from xai_cli.report.attribution_figures import attribution_grid, time_vs_faithfulness
from xai_cli.report.document import Document
from xai_cli.report.writer import RunReport, atomic_write
from xai_cli.training.store import load_classifiers
from xai_cli.utils.progress import track

log = logging.getLogger("xai")


def _indices(settings: DictConfig, n_test: int) -> np.ndarray:
    if settings.indices is not None:
        idx = np.asarray(list(settings.indices), dtype=int)
        bad = idx[(idx < 0) | (idx >= n_test)]
        if len(bad):
            raise UserError(f"explain.indices {bad.tolist()} out of range: the test split has {n_test} images")
        return idx
    return np.arange(min(int(settings.n_images), n_test))


def _timed_explain(explainer: Explainer, model: Any, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Attributions and the median seconds per image over the explainer's batches (model calls included)."""
    maps, per_image = [], []
    for i in range(0, len(x), explainer.batch_size):
        start = time.perf_counter()
        maps.append(explainer.explain(model, x[i : i + explainer.batch_size], target[i : i + explainer.batch_size]))
        per_image.append((time.perf_counter() - start) / len(maps[-1]))
    return torch.cat(maps), statistics.median(per_image)


class ExplainRunner:
    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = cfg.explain
        if not cfg.explainers:
            raise UserError("no explainers selected: e.g. explainers=[integrated_gradients,lime]")
        data: ArrayDataModule = instantiate(cfg.dataset)
        data.setup()
        if len(data.input_shape) != 3:
            raise UserError(f"xai explain needs images; {data.name} has inputs of shape {data.input_shape}")
        models = load_classifiers(cfg, data)
        test, train = data.split("test"), data.split("train")
        idx = _indices(s, len(test))
        x, y = test.x[idx], test.y[idx]
        rng = np.random.default_rng(int(cfg.seed))
        background = train.x[np.sort(rng.choice(len(train), min(int(s.background_size), len(train)), replace=False))]
        explainers: dict[str, Explainer] = {name: instantiate(e) for name, e in cfg.explainers.items()}
        use_true = str(s.target).lower() == "true"

        results: dict[str, dict[str, Any]] = {name: {} for name in explainers}
        saved: dict[str, np.ndarray] = {"indices": idx, "labels": y.numpy()}
        predictions: dict[str, Any] = {}
        for model_name, stored in models.items():
            probs = stored.model.predict_proba(x)
            target = y if use_true else torch.from_numpy(probs.argmax(1))
            predictions[model_name] = {"predicted": probs.argmax(1).tolist(),
                                       "probability": probs.max(1).round(4).tolist(), "target": target.tolist()}
            maps = self._explain_model(cfg, model_name, stored.model, explainers, background, x, target, results)
            saved.update({f"{model_name}/{name}": m.numpy() for name, m in maps.items() if m is not None})
            titles = [f"#{i} y={int(t)} ŷ={p} ({q:.2f})" for i, t, p, q in
                      zip(idx, y, predictions[model_name]["predicted"], predictions[model_name]["probability"])]
            report.save_figure(attribution_grid(x, maps, titles, f"{model_name}: attributions for the "
                                                f"{'true' if use_true else 'predicted'} class"), f"attributions_{model_name}")

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **saved)
        atomic_write(report.run_dir / "attributions.npz", buffer.getvalue())
        points = {m: {e: (r[m]["time_per_image_s"], r[m]["deletion_auc"]) for e, r in results.items()
                      if "deletion_auc" in r.get(m, {})} for m in models}
        report.save_figure(time_vs_faithfulness(points), "time_vs_deletion")
        metrics = {
            "command": "explain",
            "dataset": data.summary(),
            "seed": int(cfg.seed),
            "target": "true" if use_true else "predicted",
            "indices": idx.tolist(),
            "models": {m: {"accuracy": {"test": float((sm.model.predict_proba(test.x).argmax(1) == test.y.numpy()).mean())},
                           "from_store": not sm.trained_now} for m, sm in models.items()},
            "predictions": predictions,
            "settings": {"background_size": int(s.background_size), "faithfulness": OmegaConf.to_container(s.faithfulness),
                         "stability": OmegaConf.to_container(s.stability),
                         "randomization": OmegaConf.to_container(s.randomization),
                         "explainers": {n: {"method": type(e).__name__, **settings_of(e)} for n, e in explainers.items()}},
            "explainers": results,
        }
        report.write(metrics, self.render(metrics, report.run_dir))
        return metrics

    def _explain_model(self, cfg: DictConfig, model_name: str, model: Any, explainers: dict[str, Explainer],
                       background: torch.Tensor, x: torch.Tensor, target: torch.Tensor,
                       results: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor | None]:
        """Every explainer on one model: maps (None where not applicable), measurements into `results`."""
        random_model = self._randomised(cfg, model_name, model)
        maps: dict[str, torch.Tensor | None] = {}
        for name, explainer in track(explainers.items(), f"{model_name}: explaining", total=len(explainers)):
            try:
                explainer.check(model)
            except NotApplicable as reason:
                results[name][model_name] = {"skipped": str(reason)}
                maps[name] = None
                continue
            explainer.set_background(background)
            start = time.perf_counter()
            maps[name], seconds = _timed_explain(explainer, model, x, target)
            result = self._measure(cfg.explain, explainer, model, random_model, x, target, maps[name], seconds,
                                   int(cfg.seed))
            result["wall_time_s"] = time.perf_counter() - start
            results[name][model_name] = result
            log.info("%s / %s: %.1f s (%.4f s per image, then the measurements)", model_name, name,
                     result["wall_time_s"], seconds)
        return maps

    @staticmethod
    def _randomised(cfg: DictConfig, name: str, model: Any) -> Any:
        """The same architecture with fresh random weights (None for models without weights to randomise)."""
        if not isinstance(model, torch.nn.Module):
            return None
        torch.manual_seed(int(cfg.seed) + 10_000)
        random_model = instantiate(cfg.classifiers[name].model).to(next(model.parameters()).device)
        return random_model.eval()

    @staticmethod
    def _measure(s: DictConfig, explainer: Explainer, model: Any, random_model: Any, x: torch.Tensor,
                 target: torch.Tensor, maps: torch.Tensor, seconds: float, seed: int) -> dict[str, Any]:
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

    @staticmethod
    def render(metrics: dict[str, Any], run_dir: Path) -> Document:
        ds = metrics["dataset"]
        doc = Document(f"xai explain — {ds['name']}")
        models = list(metrics["models"])
        doc.paragraph(f"{len(metrics['indices'])} test images of {ds['name']}, explained for the "
                      f"{metrics['target']} class by {len(metrics['explainers'])} methods on {len(models)} models "
                      f"(seed {metrics['seed']}). Red marks evidence for the class, blue against; each map is "
                      "scaled to its own largest value.")
        doc.table(["model", "test accuracy", "source"],
                  [[m, v["accuracy"]["test"], "store" if v["from_store"] else "trained now"]
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
                rows.append([name, m, f"{r['time_per_image_s']:.4f}", r["deletion_auc"], r["deletion_auc_random"],
                             r["insertion_auc"], r["insertion_auc_random"], r["stability"],
                             "n/a" if r["randomization_similarity"] is None else r["randomization_similarity"]])
        doc.table(["explainer", "model", "s / image", "deletion AUC", "random", "insertion AUC", "random",
                   "stability", "randomisation"], rows)
        for (m, reason), names in skipped.items():
            doc.paragraph(f"Not applicable to {m}: {', '.join(names)} ({reason}).")
        doc.paragraph("Reading the randomisation column: methods that multiply by the input from a black "
                      "baseline (integrated gradients, DeepLIFT) give exactly 0 on black background pixels for "
                      "any weights, which by itself raises their rank correlation with a random model.")
        if (run_dir / "figures/time_vs_deletion.png").is_file():
            doc.figure("figures/time_vs_deletion.png", "Cost against faithfulness, one point per explainer.")
        doc.heading("Attributions")
        for m in models:
            path = f"figures/attributions_{m}.png"
            if (run_dir / path).is_file():
                doc.figure(path, f"{m}: each row an image (true label y, prediction ŷ and its probability), "
                                 "each column a method.")
        doc.heading("Settings")
        doc.table(["explainer", "settings"], [[n, ", ".join(f"{k}={v}" for k, v in e.items())]
                                              for n, e in metrics["settings"]["explainers"].items()])
        doc.paragraph(f"Background (reference) images: {metrics['settings']['background_size']} random training "
                      "images. Attributions are saved in attributions.npz (key '<model>/<explainer>', arrays "
                      "(N, H, W), with 'indices' and 'labels').")
        return doc
