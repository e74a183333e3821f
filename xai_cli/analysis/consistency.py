"""`xai consistency` (Agree to Disagree): do copies of one architecture, differing only in training
randomness, explain the same images alike?

Pipeline: plan the copies (one source of randomness varied at a time) → train or load each from the model
store → explain the same test images for their true class with every copy → per pair of copies, how well
a logistic regression tells their explanations apart (S) and the statistical distances → consistency
C = 1 − mean S per perturbation and overall → table, S heat maps, the copies' maps side by side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from xai_cli.analysis.context import Model, ModelSpec, RunContext, is_fixed
from xai_cli.analysis.result import AnalysisResult, read_settings, save_result
from xai_cli.data.base import Split
from xai_cli.errors import UserError
from xai_cli.explainers.base import Explainer, NotApplicable
from xai_cli.metrics.agreement import (consistency, consistency_interval, distinguishability, jensen_shannon,
                                       kolmogorov_smirnov, wilcoxon_statistic)
from xai_cli.report.attribution_figures import attribution_grid
from xai_cli.report.document import Document
from xai_cli.report.figures import heatmap
from xai_cli.report.writer import RunReport
from xai_cli.utils.progress import track

log = logging.getLogger("xai")

# Which training seeds each perturbation varies (xai_cli.training.fit.Seeds); the others stay at the run seed.
PERTURBATIONS: dict[str, tuple[str, ...]] = {"seed": ("init", "order", "dropout"), "shuffle": ("order",),
                                             "dropout": ("dropout",)}
BASE = "base"


def plan_copies(perturbations: list[str], copies: int, seed: int) -> dict[str, dict[str, int]]:
    """Copy label -> pinned seeds. The base copy (every seed = the run seed) is shared by all perturbations;
    copy r of perturbation p moves p's seeds to seed + r."""
    base = {"init": seed, "order": seed, "dropout": seed}
    plan = {BASE: base}
    for p in perturbations:
        for r in range(1, copies):
            plan[f"{p}-{r}"] = {**base, **{k: seed + r for k in PERTURBATIONS[p]}}
    return plan


def copies_of(perturbation: str, copies: int) -> list[str]:
    return [BASE] + [f"{perturbation}-{r}" for r in range(1, copies)]


def applicable(perturbation: str, model_cfg: DictConfig) -> bool:
    """Dropout masks only vary in models that have dropout (not an SVM, not a ResNet)."""
    if perturbation != "dropout":
        return True
    model = instantiate(model_cfg.model)
    return isinstance(model, nn.Module) and any(isinstance(m, nn.Dropout) for m in model.modules())


def _images(test: Split, n_per_class: int, num_classes: int) -> np.ndarray:
    """The first n test images of every class, in test order."""
    y = test.y.numpy()
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:n_per_class] for c in range(num_classes)]))


@dataclass(frozen=True)
class ConsistencySettings:
    """Which randomness varies, how many copies, which images (the CLI's `consistency.*`)."""

    perturbation: str = "all"   # seed, shuffle, dropout, or all
    copies: int = 3
    n_per_class: int = 30
    test_size: float = 0.3
    explain_seed: int = 0
    background_size: int = 64
    figure_images: int = 3
    permutation_null: bool = True  # every pair's S beside its permutation null (the copy labels shuffled)

    def __post_init__(self) -> None:
        if any(p not in PERTURBATIONS for p in self.names):
            raise UserError(f"consistency.perturbation={self.perturbation}: choose one of "
                            f"{', '.join([*PERTURBATIONS, 'all'])}")
        if int(self.copies) < 2:
            raise UserError("consistency.copies must be at least 2: a pair is needed to compare")

    @property
    def names(self) -> list[str]:
        return list(PERTURBATIONS) if self.perturbation == "all" else [str(self.perturbation)]

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "ConsistencySettings":
        return read_settings(cls, {k: v for k, v in settings.items() if k != "model_agnostic_explainer"},
                             "consistency")


@dataclass
class ConsistencyResult(AnalysisResult):
    """The paper's table (per architecture and explainer: α, C, C per perturbation, accuracy mean ± std), every
    pair's S and alternative distances, and the figures."""

    command = "consistency"

    def render(self) -> Document:
        return render(self.metrics, self.has_figure)


ExplainerFactory = Callable[[], Explainer]


def check_trainable(architectures: Sequence[ModelSpec]) -> None:
    """Copies are trained: a fixed model (classifier=file) cannot stand for an architecture."""
    for spec in architectures:
        if is_fixed(spec.config):
            path = spec.config.get("path", "its file")
            raise UserError(f"consistency retrains copies of each architecture, and {spec.name} is a fixed model "
                            f"({path}): to train copies of its class, use 'classifiers=[module]' "
                            "classifiers.module.model.module._target_=mypkg.Net")


def measure_consistency(ctx: RunContext, architectures: Sequence[ModelSpec], explainers: Mapping[str, ExplainerFactory],
                        fallback: tuple[str, ExplainerFactory], s: ConsistencySettings) -> ConsistencyResult:
    """Train (or load) the copies of each architecture, explain the same images with each, compare every pair.

    `explainers` build fresh explainers per architecture; `fallback` (a model-agnostic one) serves an
    architecture none of them can explain."""
    if not explainers:
        raise UserError("no explainers selected: e.g. explainers=[gradient_shap]")
    check_trainable(architectures)
    data = ctx.data
    test = data.split("test")
    idx = _images(test, int(s.n_per_class), data.num_classes)
    x, y = test.x[idx], test.y[idx]
    background = ctx.background(s.background_size)
    names = s.names

    result = ConsistencyResult(metrics={})
    table, pairs, figures = [], [], {}
    skipped: dict[str, str] = {}
    for spec in architectures:
        arch = spec.name
        perturbations = [p for p in names if applicable(p, spec.config)]
        if not perturbations:  # e.g. dropout on a model without dropout: nothing to compare, nothing to train
            skipped[arch] = f"{', '.join(names)} does not apply (the model has no dropout)"
            log.warning("%s: skipped, %s", arch, skipped[arch])
            continue
        plan = plan_copies(perturbations, int(s.copies), ctx.seed)
        models: dict[str, Model] = {}
        accuracy = {}
        for label, seeds in track(plan.items(), f"{arch}: copies", total=len(plan)):
            copy_spec = ModelSpec(arch, OmegaConf.merge(spec.config, {"fit": {"seeds": seeds}}))
            models[label] = ctx.trained([copy_spec])[arch]
            accuracy[label] = ctx.accuracy(models[label])
        for explainer_name, explainer in _usable(explainers, fallback, models[BASE].classifier).items():
            explainer.set_background(background)
            # the same sampling (explain_seed) for every copy: differences are the model's
            maps = {label: ctx.explanations(model, explainer, x, y, int(s.explain_seed))
                    for label, model in track(models.items(), f"{arch}: {explainer_name} on each copy",
                                              total=len(models))}
            row, arch_pairs, matrix = _compare(arch, explainer_name, maps, y.numpy(), names, perturbations,
                                               accuracy, s, ctx.seed)
            table.append(row)
            pairs += arch_pairs
            key = f"{arch}_{explainer_name}"
            labels = list(maps)
            figures[key] = {
                "architecture": arch, "explainer": explainer_name,
                "S": result.add_figure(heatmap(matrix, labels, labels, f"{arch} / {explainer_name}: S(a, b)",
                                               value_format="{:.2f}", cmap="magma_r"), f"S_{key}"),
                "maps": result.add_figure(_copies_figure(x, y, maps, int(s.figure_images),
                                                         f"{arch} / {explainer_name}: the same images, "
                                                         "explained by each copy", data.class_names),
                                          f"copies_{key}"),
            }
            log.info("%s / %s: C = %.3f over %d pairs", arch, explainer_name, row["C"], row["alpha"])

    result.metrics = {
        "command": "consistency",
        "dataset": data.summary(),
        "seed": ctx.seed,
        "perturbations": names,
        "copies": int(s.copies),
        "n_images": int(len(idx)),
        "n_per_class": int(s.n_per_class),
        "test_size": float(s.test_size),
        "table": table,
        "skipped": skipped,
        "pairs": pairs,
        "figures": figures,
    }
    return result


def _usable(explainers: Mapping[str, ExplainerFactory], fallback: tuple[str, ExplainerFactory],
            model: Any) -> dict[str, Explainer]:
    """The chosen explainers that can explain this model; the model-agnostic one if none can."""
    out = {}
    for name, build in explainers.items():
        explainer = build()
        try:
            explainer.check(model)
            out[name] = explainer
        except NotApplicable:
            continue
    if not out:
        name, build = fallback
        out[name] = build()
    return out


class ConsistencyRunner:
    """The CLI's `xai consistency`: the configured architectures and explainers, settings from `consistency.*`."""

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = ConsistencySettings.of(OmegaConf.to_container(cfg.consistency, resolve=True))  # type: ignore[arg-type]
        if not cfg.explainers:
            raise UserError("no explainers selected: e.g. explainers=[gradient_shap]")
        ctx = RunContext.from_config(cfg)
        architectures = [ModelSpec(name, OmegaConf.create(OmegaConf.to_container(c, resolve=True)))
                         for name, c in cfg.classifiers.items()]
        explainers = {name: partial(instantiate, e) for name, e in cfg.explainers.items()}
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        fallback_name = choices.get("explainer@consistency.model_agnostic_explainer", "model_agnostic")
        fallback = (fallback_name, partial(instantiate, cfg.consistency.model_agnostic_explainer))
        result = measure_consistency(ctx, architectures, explainers, fallback, s)
        save_result(result, report.run_dir)
        return result.metrics


def _compare(arch: str, explainer: str, maps: dict[str, np.ndarray], y: np.ndarray, names: list[str],
             perturbations: list[str], accuracy: dict[str, float], s: ConsistencySettings,
             seed: int) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    copies, test_size = int(s.copies), float(s.test_size)
    labels = list(maps)
    matrix = np.zeros((len(labels), len(labels)))
    for i, j in combinations(range(len(labels)), 2):
        matrix[i, j] = matrix[j, i] = distinguishability(maps[labels[i]], maps[labels[j]], y, test_size, seed)
    for i, label in enumerate(labels):  # S(a, a), computed like any other pair: 0 when the method is sound
        matrix[i, i] = distinguishability(maps[label], maps[label], y, test_size, seed)

    pairs, by_perturbation = [], {}
    for p in perturbations:
        scores = []
        for a, b in combinations(copies_of(p, copies), 2):
            score = float(matrix[labels.index(a), labels.index(b)])
            scores.append(score)
            null = (distinguishability(maps[a], maps[b], y, test_size, seed, shuffled=True)
                    if s.permutation_null else None)
            pairs.append({"architecture": arch, "explainer": explainer, "perturbation": p, "a": a, "b": b,
                          "S": score, "S_null": null, "jsd": jensen_shannon(maps[a], maps[b]),
                          "ks": kolmogorov_smirnov(maps[a], maps[b]),
                          "wilcoxon": wilcoxon_statistic(maps[a], maps[b])})
        by_perturbation[p] = consistency(scores)
    accuracies = list(accuracy.values())
    row = {
        "architecture": arch,
        "explainer": explainer,
        "alpha": len(pairs),
        "C": consistency([q["S"] for q in pairs]),
        "C_ci95": consistency_interval([q["S"] for q in pairs], seed=seed),
        "S_mean": float(np.mean([q["S"] for q in pairs])) if pairs else None,
        # the noise floor at this many images: what S would be if the copies' maps were interchangeable
        "S_null_mean": float(np.mean([q["S_null"] for q in pairs])) if pairs and s.permutation_null else None,
        "C_by_perturbation": {p: by_perturbation.get(p) for p in names},  # None: n/a for this model
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "accuracy_by_copy": accuracy,
    }
    return row, pairs, matrix

def _copies_figure(x: torch.Tensor, y: torch.Tensor, maps: dict[str, np.ndarray], n: int, title: str,
                   class_names: Sequence[str]) -> Any:
    # one image per class first, so the figure shows different digits
    _, first = np.unique(y.numpy(), return_index=True)
    rows = np.sort(first)[:n]
    return attribution_grid(x[rows], {k: torch.from_numpy(v[rows]) for k, v in maps.items()},
                            [f"y={class_names[int(y[r])]}" for r in rows], title)

# Watson et al. (WACV 2022), MNIST, consistency over all perturbations: the figures ours are read beside
PAPER_C = {"mlp": 0.067, "small_cnn": 0.025, "cnn": 0.065, "resnet18": 0.0, "svm_rbf": 0.944}


def _interval(ci: list[float] | None) -> str:
    return "" if ci is None else f"{ci[0]:.3f} – {ci[1]:.3f}"


def render(metrics: dict[str, Any], has_figure: Any) -> Document:
    """The consistency report from its metrics (`has_figure` is the shared signature; every figure is drawn)."""
    ds = metrics["dataset"]
    doc = Document(f"xai consistency — {ds['name']}")
    doc.paragraph(f"Copies of each architecture differ in one source of training randomness at a time "
                  f"({', '.join(metrics['perturbations'])}; {metrics['copies']} copies each, the base copy "
                  f"shared). Each copy explains the same {metrics['n_images']} test images "
                  f"({metrics['n_per_class']} per class) for their true class. For a pair of copies, a "
                  "logistic regression learns to tell their explanations apart, per class, on "
                  f"{1 - metrics['test_size']:.0%} of the images and is tested on the rest: S = 2·|accuracy − "
                  "0.5| (0: indistinguishable, 1: always told apart). Consistency C = 1 − mean S over the α "
                  "compared pairs.")
    perturbations = metrics["perturbations"]
    paper = PAPER_C if metrics["dataset"]["name"] == "mnist" else {}
    doc.table(["architecture", "explainer", "α", "C", "C 95 % interval", "mean S", "S null",
               *[f"C ({p})" for p in perturbations], "accuracy", *(["C (paper)"] if paper else [])],
              [[r["architecture"], r["explainer"], r["alpha"], r["C"], _interval(r.get("C_ci95")), r.get("S_mean"),
                r.get("S_null_mean"),
                *["n/a" if r["C_by_perturbation"][p] is None else r["C_by_perturbation"][p] for p in perturbations],
                f"{100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} %",
                *([paper.get(r["architecture"], "")] if paper else [])] for r in metrics["table"]])
    for arch, reason in metrics.get("skipped", {}).items():
        doc.paragraph(f"{arch}: not compared — {reason}.")
    doc.paragraph("n/a: the perturbation does not apply (no dropout in the model, e.g. an SVM or a ResNet). "
                  "S null is the same regression with each image's two maps given random copy labels: the "
                  "distinguisher's noise floor at this many images (|accuracy − 0.5| is never negative, so it is "
                  "above 0). A mean S near its null means the copies cannot be told apart here; S well above it "
                  "is a real difference. Raise consistency.n_per_class to lower the floor. The interval is a "
                  "bootstrap over the α pairs." + (" C (paper): Watson et al.'s MNIST table." if paper else ""))
    doc.heading("Pairs")
    doc.paragraph("Beside S, the slides' alternative distinguishers, each averaged over images: Jensen–Shannon "
                  "distance between the normalised |attribution| distributions, the Kolmogorov–Smirnov statistic "
                  "and the Wilcoxon signed-rank statistic of the paired pixel values (all 0 for identical maps).")
    doc.table(["architecture", "explainer", "perturbation", "a", "b", "S", "S null", "JSD", "KS", "Wilcoxon"],
              [[q["architecture"], q["explainer"], q["perturbation"], q["a"], q["b"], q["S"], q.get("S_null"),
                q["jsd"], q["ks"], q["wilcoxon"]] for q in metrics["pairs"]])
    for fig in metrics["figures"].values():
        doc.heading(f"{fig['architecture']} / {fig['explainer']}")
        doc.figure(fig["S"], "S for every pair of copies (the diagonal computed too: a copy against itself).")
        doc.figure(fig["maps"], "Each column one copy; red: evidence for the true class, blue: against.")
    return doc
