"""`xai uncertainty`: a generator conditioned on class and on the frozen classifier's confidence (MSP).

Pipeline: the classifier from the model store (frozen) → the MSP of every training image → the conditional
GAN, trained against that classifier into the store → a grid of (class, MSP) conditions, generated and
classified (xai_cli.uncertainty.evaluation) → the MSP-in vs MSP-out scatter, the 2-D picture or sample
grids → the report.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.analysis.context import Model, ModelSpec, RunContext
from xai_cli.analysis.result import AnalysisResult, read_settings, save_result
from xai_cli.confidence.evaluation import evaluate_grid, msp_grid
from xai_cli.confidence.inversion import invert, lower_confidence
from xai_cli.confidence.realism import PenultimateFeatures, ScaledFeatures, kernel_distance, mean_norm
from xai_cli.errors import UserError, user_errors_unwrapped
from xai_cli.models.adapters import fingerprint
from xai_cli.report.document import Document
from xai_cli.report.uncertainty_figures import msp_scatter, plane_panels, sample_grid
from xai_cli.report.writer import RunReport
from xai_cli.training.store import ModelStore, StoredModel, chosen, to_device

log = logging.getLogger("xai")


@dataclass(frozen=True)
class UncertaintySettings:
    """The CLI's `uncertainty.*`: how the GAN is conditioned and how its conditions are evaluated."""

    aux_weight: float = 0.0          # > 0: a generator loss pulling the classifier's MSP on fakes to the condition
    condition_class: str = "predicted"  # the class of the condition: the classifier's ("predicted") or the label
    grid_points: int = 7
    msp_low: float = 0.4
    n_per_point: int = 50
    shown_msp: Sequence[float] = (1.0, 0.7)
    n_shown: int = 8
    n_realism: int = 1000
    realism_bands: Sequence[float] = (0.0, 0.6, 0.8, 0.95, 0.99, 1.0)  # MSP band edges for KID per condition
    realism_min_images: int = 20
    explain_index: int | None = None
    inversion: Mapping[str, Any] = field(default_factory=lambda: {"steps": 200, "restarts": 8, "lr": 0.05})

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "UncertaintySettings":
        return read_settings(cls, settings, "uncertainty")


@dataclass
class UncertaintyResult(AnalysisResult):
    """The MSP asked for vs obtained over a (class, MSP) grid, realism, and optionally one test image made
    progressively less confident; the scatter, the 2-D picture or the sample grids."""

    command = "uncertainty"

    def render(self) -> Document:
        return render(self.metrics)


def check_inputs(ctx: RunContext, s: UncertaintySettings) -> None:
    """What can be refused before anything trains."""
    if s.condition_class not in ("predicted", "true"):
        raise UserError(f"uncertainty.condition_class={s.condition_class}: use predicted or true")
    if s.explain_index is not None:
        ctx.indices([int(s.explain_index)], 1, "uncertainty.explain_index")


def check_generator(generator: ModelSpec) -> None:
    """Build the GAN once, untrained: a generator that cannot make these images says so before anything trains."""
    with user_errors_unwrapped():
        instantiate(generator.config.model)


def conditioned(generator: ModelSpec, s: UncertaintySettings) -> ModelSpec:
    """The generator's spec with the analysis's conditioning settings in its fit (they change what it learns,
    so they belong to its store key)."""
    config = OmegaConf.to_container(generator.config, resolve=True)
    config["fit"].update(aux_weight=float(s.aux_weight), condition_class=str(s.condition_class))  # type: ignore[index, union-attr]
    return ModelSpec(generator.name, OmegaConf.create(config))


def measure_uncertainty(ctx: RunContext, model: Model, generator: ModelSpec,
                        s: UncertaintySettings) -> UncertaintyResult:
    """Train (or load) the conditional GAN against `model` and measure how well its MSP condition holds."""
    check_inputs(ctx, s)
    data = ctx.data
    train, test = data.split("train"), data.split("test")
    classifier = model.classifier
    with tempfile.TemporaryDirectory(prefix="xai-unstored-") as scratch:
        gan_stored = _gan(ctx, model, conditioned(generator, s), Path(scratch))
    gan = gan_stored.model.eval()

    train_probs = ctx.train_probabilities(model)  # kept in the classifier's store entry after the first run
    real_msp = train_probs.max(1)
    # the real conditions, as the GAN was trained on them
    real_labels = torch.from_numpy(train_probs.argmax(1)) if s.condition_class == "predicted" else train.y
    test_probs = ctx.probabilities(model, "test")
    grid = msp_grid(data.num_classes, int(s.grid_points), float(s.msp_low))

    @torch.no_grad()
    def generate(z: torch.Tensor, labels: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
        return gan.generate(z, labels, msp).cpu()

    evaluation, samples = evaluate_grid(generate, classifier.predict_proba, gan.latent_dim, data.num_classes,
                                        grid, int(s.n_per_point), ctx.seed)
    log.info("MSP in vs out: Pearson %s, MAE %.3f, class agreement %.3f",
             "n/a" if evaluation["msp_pearson"] is None else f"{evaluation['msp_pearson']:.3f}",
             evaluation["msp_mae"], evaluation["class_agreement"])

    # conditions drawn as in training: the (class, MSP) pairs of random training images
    rows = np.random.default_rng(ctx.seed).integers(0, len(real_msp), min(len(test), int(s.n_realism)))
    drawn_labels, drawn_msp = real_labels[rows], torch.from_numpy(real_msp[rows]).float()
    z = gan.sample_latent(len(rows), torch.Generator().manual_seed(ctx.seed))
    drawn = torch.cat([generate(z[i : i + 250], drawn_labels[i : i + 250], drawn_msp[i : i + 250])
                       for i in range(0, len(rows), 250)])  # in chunks: paper-size generators on a GPU
    realism = _realism(classifier, train.x, test.x, drawn, ctx.seed) if len(data.input_shape) == 3 else None
    if realism is not None:
        test_labels = torch.from_numpy(test_probs.argmax(1)) if s.condition_class == "predicted" else test.y
        realism["by_msp"] = _realism_by_msp(classifier, generate, gan, (test.x, test_labels, test_probs.max(1)),
                                            (train.x, real_msp), s, ctx.seed)

    result = UncertaintyResult(metrics={})
    agree = samples["label_out"] == samples["label_in"]
    figures = {"msp_scatter": result.add_figure(
        msp_scatter(samples["msp_in"], samples["msp_out"], agree, f"{model.name}: MSP asked for vs obtained"),
        "msp_scatter")}
    if len(data.input_shape) == 1 and data.input_shape[0] == 2:
        figures["plane"] = result.add_figure(
            plane_panels(test.x.numpy(), test_probs.max(1), drawn.numpy(), drawn_msp.numpy(),
                         "real data and generated data, coloured by MSP"), "plane")
    elif len(data.input_shape) == 3:
        for m in s.shown_msp:
            figures[f"samples_{m}"] = result.add_figure(
                _grid(gan, classifier, float(m), data.class_names, int(s.n_shown), ctx.seed), f"samples_msp_{m}")
    explanation = None
    if s.explain_index is not None:
        explanation = _explain(gan, classifier, test, int(s.explain_index), grid, ctx.seed, data.class_names,
                               use_label=s.condition_class == "true", **s.inversion)
        figure = explanation.pop("figure", None)
        if figure is not None:
            figures["explained"] = result.add_figure(figure, f"explained_{s.explain_index}")
    fit = gan_stored.meta["fit"]
    result.metrics = {
        "command": "uncertainty",
        "dataset": data.summary(),
        "seed": ctx.seed,
        "classifier": {"name": model.name, **model.describe(),
                       "accuracy": {"test": float((test_probs.argmax(1) == test.y.numpy()).mean()),
                                    **_accuracy_by_corruption(train, train_probs, test, test_probs)}},
        "real_msp": {"mean": float(real_msp.mean()), "median": float(np.median(real_msp)),
                     "share_below_0.9": float((real_msp < 0.9).mean())},
        "generator": {"name": gan_stored.name, "from_store": not gan_stored.trained_now,
                      "path": str(gan_stored.path), "train_time_s": fit["train_time_s"],
                      "steps": fit.get("steps"),
                      "losses": {k: v for k, v in fit.items() if k.startswith(("first_", "final_"))},
                      "parameters": {"generator": sum(p.numel() for p in gan.generator.parameters()),
                                     "discriminator": sum(p.numel() for p in gan.discriminator.parameters())}},
        "aux_weight": float(s.aux_weight),
        "condition_class": str(s.condition_class),
        "evaluation": {**evaluation, **({"realism": realism} if realism else {})},
        **({"explanation": explanation} if explanation else {}),
        "figures": figures,
    }
    return result


def _gan(ctx: RunContext, model: Model, generator: ModelSpec, scratch: Path) -> StoredModel:
    """The GAN learns the classifier's MSPs: the classifier's identity (its store key, or the sha256 of a
    given model's weights) joins its key. A model with no identity (a plain callable) gets a GAN in a
    scratch store that disappears with the run."""
    identity = model.stored.key if model.stored is not None else fingerprint(model.classifier)
    store = ctx.store if identity is not None else ModelStore(scratch)
    label = model.spec.name if model.spec is not None else model.name
    spec = OmegaConf.merge(generator.config, {"against": {"classifier": identity}})
    return to_device(store.get(f"{generator.name}_{label}", spec, ctx.data, ctx.dataset_cfg, ctx.trainer, ctx.seed,
                               context={"classifier": model.classifier,
                                        # lazily: a stored GAN needs none; a trained one reuses the store's copy
                                        "train_probabilities": lambda: ctx.train_probabilities(model)}))


class UncertaintyRunner:
    """The CLI's `xai uncertainty`: the configured classifier (trained into the store) and conditional GAN."""

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = UncertaintySettings.of(OmegaConf.to_container(cfg.uncertainty, resolve=True))  # type: ignore[arg-type]
        ctx = RunContext.from_config(cfg)
        check_inputs(ctx, s)  # bad settings fail before any training
        generator = ModelSpec(chosen("generator"), cfg.generator)
        check_generator(generator)
        spec = ModelSpec(chosen("classifier"), cfg.classifier)
        model = ctx.trained([spec])[spec.name]
        result = measure_uncertainty(ctx, model, generator, s)
        save_result(result, report.run_dir)
        return result.metrics


def _accuracy_by_corruption(train: Any, train_probs: np.ndarray, test: Any,
                            test_probs: np.ndarray) -> dict[str, Any]:
    """For corrupted data (MNIST-corrupted): accuracy on clean and on corrupted images, per split (the
    seed reports 98.8/98.5 % train/val clean and 94.0/93.2 % corrupted). Empty for other data."""
    out: dict[str, Any] = {}
    for split_name, split, probs in (("train", train, train_probs), ("test", test, test_probs)):
        if "corruption" not in split.extras:
            return {}
        right = probs.argmax(1) == split.y.numpy()
        corrupted = np.asarray(split.extras["corruption"]) != 0
        out[split_name] = {"clean": float(right[~corrupted].mean()) if (~corrupted).any() else None,
                           "corrupted": float(right[corrupted].mean()) if corrupted.any() else None}
    return {"by_corruption": out}


def _realism(classifier: Any, train_x: torch.Tensor, test_x: torch.Tensor, fake: torch.Tensor,
             seed: int) -> dict[str, Any] | None:
    """KID of generated vs real test images in the classifier's penultimate features, and the same for
    real training vs real test images (the floor a perfect generator would reach)."""
    if not isinstance(classifier, torch.nn.Module):
        return None  # no features to compare in (e.g. an SVM): no realism score
    features = PenultimateFeatures(classifier)
    n = len(fake)
    device = next(classifier.parameters()).device
    real = test_x[:n].to(device)
    pick = torch.from_numpy(np.random.default_rng(seed).choice(len(train_x), n, replace=False))
    kid, kid_std = kernel_distance(features, real, fake.to(device), seed)
    floor, floor_std = kernel_distance(features, real, train_x[pick].to(device), seed)
    return {"kid": kid, "kid_std": kid_std, "kid_real_vs_real": floor, "kid_real_vs_real_std": floor_std,
            "n_images": n, "features": "the classifier's penultimate layer (input of its last linear layer)"}


def _realism_by_msp(classifier: Any, generate: Any, gan: Any, test: tuple[torch.Tensor, torch.Tensor, np.ndarray],
                    train: tuple[torch.Tensor, np.ndarray], s: UncertaintySettings, seed: int) -> list[dict[str, Any]]:
    """KID per confidence band: real test images whose MSP lies in the band against samples asked for exactly
    their conditions (class and MSP, one each), and real training images of the band against the same test
    images (the floor). An uncertain sample should look like the real uncertain images, not like a
    confident one nor like nothing real; a KID against all test images cannot tell."""
    features = PenultimateFeatures(classifier)
    device = next(classifier.parameters()).device
    (x, labels, msp), (train_x, train_msp) = test, train
    edges = [float(e) for e in s.realism_bands]
    rng = np.random.default_rng(seed)
    rows = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = k == len(edges) - 2
        inside = np.flatnonzero((msp >= lo) & ((msp <= hi) if last else (msp < hi)))
        row: dict[str, Any] = {"msp": [lo, hi], "n_real": int(len(inside)), "kid": None}
        train_inside = np.flatnonzero((train_msp >= lo) & ((train_msp <= hi) if last else (train_msp < hi)))
        if len(inside) < int(s.realism_min_images) or len(train_inside) < 2:
            row["note"] = f"fewer than {int(s.realism_min_images)} real test images in this band"
            rows.append(row)
            continue
        inside = np.sort(rng.choice(inside, min(len(inside), int(s.n_realism)), replace=False))
        z = gan.sample_latent(len(inside), torch.Generator().manual_seed(seed + k))
        cond_msp = torch.from_numpy(msp[inside]).float()
        fake = torch.cat([generate(z[i : i + 250], labels[inside][i : i + 250], cond_msp[i : i + 250])
                          for i in range(0, len(inside), 250)])
        real, fake = x[inside].to(device), fake.to(device)
        floor = train_x[np.sort(rng.choice(train_inside, min(len(train_inside), len(inside)), replace=False))]
        row["kid"], row["kid_std"] = kernel_distance(features, real, fake, seed)
        row["kid_real_vs_real"], _ = kernel_distance(features, real, floor.to(device), seed)
        # the same on one scale for every band (ScaledFeatures): what compares an uncertain band with a confident one
        row["feature_norm"] = mean_norm(features, real)
        scaled = ScaledFeatures(features, row["feature_norm"])
        row["kid_scaled"], row["kid_scaled_std"] = kernel_distance(scaled, real, fake, seed)
        row["kid_scaled_real_vs_real"], _ = kernel_distance(scaled, real, floor.to(device), seed)
        row["n"] = int(len(inside))
        rows.append(row)
    return rows


def _explain(gan: Any, classifier: Any, test: Any, index: int, grid: np.ndarray, seed: int,
             class_names: Sequence[str], use_label: bool, **inversion: Any) -> dict[str, Any]:
    """Invert test image `index` at its own condition (class as the GAN was conditioned: predicted, or the
    label with `use_label`; the classifier's MSP), then lower the MSP condition along the grid."""
    x = test.x[index]
    probs = np.asarray(classifier.predict_proba(x[None]))[0]
    label, msp = int(test.y[index]) if use_label else int(probs.argmax()), float(probs.max())

    def generate(z: torch.Tensor, labels: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return gan.generate(z, labels, m).cpu()

    inverted = invert(generate, x, label, msp, gan.latent_dim, seed=seed, **inversion)
    msps = np.array([msp] + [m for m in grid[::-1] if m < msp - 1e-6])
    images, row_probs = lower_confidence(generate, classifier.predict_proba, inverted, label, msps)
    log.info("test image %d inverted (RMSE %.3f); MSP condition %.2f → %.2f gives MSP %.2f → %.2f", index,
             inverted.rmse, msps[0], msps[-1], row_probs[0].max(), row_probs[-1].max())
    row = [{"msp_condition": float(m), "prediction": int(p.argmax()), "msp": float(p.max()),
            "p_class": float(p[label])} for m, p in zip(msps, row_probs)]
    out: dict[str, Any] = {"index": index, "label": int(test.y[index]), "prediction": int(probs.argmax()),
                           "condition_class": label, "msp": msp,
                           "reconstruction_rmse": inverted.rmse, "row": row}
    if x.dim() == 3:
        captions = [f"test #{index}: {class_names[label]} ({msp:.2f})"] + \
            [f"c={r['msp_condition']:.2f}: {class_names[r['prediction']]} ({r['msp']:.2f})" for r in row]
        out["figure"] = sample_grid(torch.cat([x[None], images]).clamp(0, 1), captions, 1,
                                    f"test image {index} (label {class_names[out['label']]}), inverted into "
                                    "the generator "
                                    f"(RMSE {inverted.rmse:.3f}), its MSP condition c lowered")
    return out


def _grid(gan: Any, classifier: Any, msp: float, class_names: Sequence[str], n_shown: int, seed: int) -> Any:
    """Rows: classes; columns: fixed latents — the same latents for every MSP shown (the seed's Fig. 3)."""
    num_classes = len(class_names)
    z = gan.sample_latent(n_shown, torch.Generator().manual_seed(seed)).repeat(num_classes, 1)
    labels = torch.arange(num_classes).repeat_interleave(n_shown)
    with torch.no_grad():
        images = gan.generate(z, labels, torch.full((len(z),), msp)).cpu().clamp(0, 1)
    probs = np.asarray(classifier.predict_proba(images))
    captions = [f"{class_names[p]} ({q:.2f})" for p, q in zip(probs.argmax(1), probs.max(1))]
    return sample_grid(images, captions, num_classes, f"MSP condition {msp}: rows are the conditioned classes")


def render(metrics: dict[str, Any]) -> Document:
    """The uncertainty report from its metrics (figure paths included)."""
    ds, c, g, e = metrics["dataset"], metrics["classifier"], metrics["generator"], metrics["evaluation"]
    doc = Document(f"xai uncertainty — {ds['name']}, {c['name']}")
    doc.heading("The generator")
    doc.paragraph(f"{g['name']} ({g['parameters']['generator']:,} generator and {g['parameters']['discriminator']:,} "
                  f"discriminator parameters, {g['steps']} steps, {g['train_time_s']:.0f} s) is conditioned on a "
                  f"class and on {c['name']}'s maximum softmax probability (MSP; the class: the "
                  f"{'classifier' + chr(39) + 's prediction' if metrics['condition_class'] == 'predicted' else 'label'}; test accuracy "
                  f"{c['accuracy']['test']:.4f}, training-set MSP median {metrics['real_msp']['median']:.3f}, "
                  f"{100 * metrics['real_msp']['share_below_0.9']:.1f} % below 0.9). Auxiliary MSP loss weight: "
                  f"{metrics['aux_weight']}.")
    fmt = lambda v: "n/a" if v is None else v  # noqa: E731
    doc.heading("Does it give the MSP asked for?")
    doc.paragraph("Pearson and Spearman correlation between the MSP each sample was conditioned on and the "
                  "classifier's MSP on it (1 is perfect control), their mean absolute difference, and how often "
                  "the classifier names the conditioned class.")
    doc.table(["MSP Pearson", "MSP Spearman", "MSP MAE", "class agreement", "samples"],
              [[fmt(e["msp_pearson"]), fmt(e["msp_spearman"]), e["msp_mae"], e["class_agreement"], e["n_samples"]]])
    doc.table(["MSP condition", "MSP obtained (mean)", "std", "class agreement"],
              [[p["msp_in"], p["msp_out_mean"], p["msp_out_std"], p["class_agreement"]] for p in e["per_point"]])
    realism = e.get("realism")
    if realism:
        doc.heading("Realism")
        doc.paragraph(f"KID {realism['kid']:.4f} ± {realism['kid_std']:.4f} between {realism['n_images']} "
                      f"generated images (conditions drawn from real ones) and real test images, in "
                      f"{realism['features']} of {c['name']}; real training vs real test images: "
                      f"{realism['kid_real_vs_real']:.4f} ± {realism['kid_real_vs_real_std']:.4f} (lower is "
                      f"more alike; comparable only between runs with this classifier).")
        bands = realism.get("by_msp")
        if bands:
            doc.paragraph("The same per confidence band: real test images whose MSP lies in the band against samples "
                          "asked for exactly their conditions (class and MSP), and real training images of the band "
                          "against the same test images (the floor). The classifier's features grow with its "
                          "confidence, and KID with them: the scaled columns divide a band's features by its real "
                          "images' mean norm, so that bands compare. Uncertain samples should look like the real "
                          "uncertain images: their scaled KID near the confident band's and near its floor.")
            doc.table(["MSP band", "real test images", "KID", "±", "real vs real", "scaled KID", "±",
                       "scaled real vs real"],
                      [[f"{b['msp'][0]:.2f}–{b['msp'][1]:.2f}", b["n_real"], fmt(b["kid"]), fmt(b.get("kid_std")),
                        fmt(b.get("kid_real_vs_real")), fmt(b.get("kid_scaled")), fmt(b.get("kid_scaled_std")),
                        fmt(b.get("kid_scaled_real_vs_real"))] for b in bands])
    corruption = c["accuracy"].get("by_corruption")
    if corruption:
        doc.heading("Corrupted training data")
        doc.table(["split", "accuracy on clean images", "on corrupted images"],
                  [[name, v["clean"], v["corrupted"]] for name, v in corruption.items()])
    doc.heading("Samples")
    doc.figure(metrics["figures"]["msp_scatter"], "Each point a generated sample: the MSP it was conditioned on "
               "(jittered) against the classifier's MSP on it; red where the classifier names another class.")
    if "plane" in metrics["figures"]:
        doc.figure(metrics["figures"]["plane"], "Left: test points coloured by the classifier's MSP; right: "
                   "generated points, conditions drawn from real (class, MSP) pairs, coloured by their MSP "
                   "condition. Low-MSP points should sit on the decision boundary.", wide=True)
    for key, path in metrics["figures"].items():
        if key.startswith("samples_"):
            doc.figure(path, "Same latents in every column; above each image the classifier's answer and MSP.")
    x = metrics.get("explanation")
    if x:
        doc.heading("What would make this image uncertain?")
        doc.paragraph(f"Test image {x['index']} (label {x['label']}; {c['name']} says {x['prediction']} with MSP "
                      f"{x['msp']:.3f}) inverted into the generator's latent space (pixel RMSE "
                      f"{x['reconstruction_rmse']:.3f}), then generated with the same latent and class at "
                      f"lower MSP conditions:")
        doc.table(["MSP condition", "prediction", "MSP", f"p(class {x['condition_class']})"],
                  [[r["msp_condition"], r["prediction"], r["msp"], r["p_class"]] for r in x["row"]])
        if "explained" in metrics["figures"]:
            doc.figure(metrics["figures"]["explained"], "The test image, then the generator's version of it at "
                       "each MSP condition c; above each the classifier's answer and MSP.", wide=True)
    return doc
