"""`xai discrepancy` (DIG-CV): where do models of similar accuracy disagree, and what do those inputs look like?

Pipeline: accuracies and test-set disagreement → a space to search in (the β-VAE's latent space, or the
raw inputs) → counterfactual segments between training instances → the batched search for discrepancy
areas (xai_cli.dig.search) → border checks, realism, figures, intervals.npz/.json and the report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.data.base import ArrayDataModule, Split
from xai_cli.dig.pool import ModelPool, unanimous
from xai_cli.dig.realism import describe, nearest_distance, reconstruction_error
from xai_cli.dig.refine import Traced, trace_areas
from xai_cli.dig.search import Areas, join_areas, search, summary
from xai_cli.dig.segments import choose_anchors, counterfactual_segments
from xai_cli.dig.space import interpolate
from xai_cli.errors import UserError
from xai_cli.report.dig_figures import area_lengths, image_row, plane_figure, segment_strip
from xai_cli.analysis.context import Model, ModelSpec, RunContext, specs_from
from xai_cli.analysis.result import AnalysisResult, read_settings, save_result
from xai_cli.analysis.train import source_of
from xai_cli.report.document import Document
from xai_cli.report.figures import heatmap
from xai_cli.report.writer import RunReport
from xai_cli.training.store import chosen

log = logging.getLogger("xai")

INTERVALS = "intervals"
TRACED = "traced"


@dataclass(frozen=True)
class DiscrepancySettings:
    """How `xai discrepancy` searches (the CLI's `discrepancy.*`; the space is the `space` group)."""

    anchors: int = 200
    anchor_choice: str = "uncertain"
    neighbours: int = 5
    n_steps: int = 16
    eps: float = 0.001
    refine_rounds: int = 2
    refine_segments: int = 1000
    refine_steps: int = 5
    refine_eps: float = 0.01
    max_accuracy_gap: float = 0.01
    match_accuracy: bool = False  # stronger nets stand in by their epoch nearest the weakest's accuracy
    explain_index: int | None = None
    explain_anchors: int = 25
    n_nearest: int = 3
    n_shown: int = 6
    figure_columns: int = 10
    realism_points: int = 500

    def __post_init__(self) -> None:
        if self.anchor_choice not in ANCHOR_CHOICES:
            raise UserError(f"discrepancy.anchor_choice={self.anchor_choice}: choose one of {', '.join(ANCHOR_CHOICES)}")

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "DiscrepancySettings":
        return read_settings(cls, settings, "discrepancy")


ANCHOR_CHOICES = ("uncertain", "random")


@dataclass
class DiscrepancyResult(AnalysisResult):
    """Accuracies and disagreement of the models, the discrepancy areas found, their checks and figures.

    `areas` are the areas as arrays (intervals.npz): per area the segment's two training indices, t_start,
    t_end, the border points just inside and outside, and each model's prediction there.
    """

    command = "discrepancy"

    @property
    def areas(self) -> dict[str, np.ndarray]:
        return self.array_file(f"{INTERVALS}.npz")

    @property
    def traced(self) -> dict[str, np.ndarray]:
        """The areas found by tracing sideways (traced.npz): the same arrays, plus each traced segment's ends;
        empty when tracing was off or had nothing to trace."""
        return self.array_file(f"{TRACED}.npz") if (self.metrics.get("tracing") or {}).get("areas_file") else {}

    def render(self) -> Document:
        return render(self.metrics, self.has_figure)


def build_segments(ctx: RunContext, space: Any, generator: ModelSpec | None, models: Mapping[str, Model],
                   s: DiscrepancySettings) -> tuple[Any, torch.Tensor, np.ndarray, np.ndarray]:
    """The search's inputs: what the space reports (the β-VAE), the training codes, anchors and segments."""
    data = ctx.data
    train = data.split("train")
    vae = space.prepare(ctx, generator)
    codes = space.encode(train.x)
    train_probs = np.stack([ctx.train_probabilities(m) for m in models.values()])
    train_preds = train_probs.argmax(2)
    anchors = choose_anchors(train_preds, train_probs.max(2).min(0), int(s.anchors), str(s.anchor_choice), ctx.seed)
    if s.explain_index is not None:
        # DIG explains one input by the areas around it: start segments from its nearest training instances too
        z = space.encode(data.split("test").x[int(s.explain_index)][None])
        near = torch.cdist(z, codes)[0].argsort()[: int(s.explain_anchors)].numpy()
        anchors = np.union1d(anchors, near)
    pairs = counterfactual_segments(codes, train_preds, anchors, int(s.neighbours))
    log.info("%d anchors, %d counterfactual segments in the %s space", len(anchors), len(pairs), space.name)
    return vae, codes, anchors, pairs


def check_inputs(ctx: RunContext, n_models: int, s: DiscrepancySettings) -> None:
    """What can be refused before anything trains."""
    if n_models < 2:
        raise UserError("xai discrepancy compares models: choose at least two, e.g. 'classifiers=[cnn,svm_rbf]'")
    if s.explain_index is not None:
        ctx.indices([int(s.explain_index)], 1, "discrepancy.explain_index")


def find_discrepancies(ctx: RunContext, models: Mapping[str, Model], space: Any, s: DiscrepancySettings,
                       generator: ModelSpec | None = None) -> DiscrepancyResult:
    """DIG-CV (or DIG in the input space): where the models disagree, searched along counterfactual segments."""
    check_inputs(ctx, len(models), s)
    data = ctx.data
    train, test = data.split("train"), data.split("test")
    matched = None
    if s.match_accuracy:
        models, matched = match_accuracies(ctx, models)
    pool = ModelPool({name: m.classifier for name, m in models.items()})
    agreement = _model_agreement(pool, test, data.class_names, float(s.max_accuracy_gap))
    for name, model in models.items():
        agreement["models"][name].update(model.describe())

    vae, codes, anchors, pairs = build_segments(ctx, space, generator, models, s)

    pool.calls = pool.points = 0
    start = time.perf_counter()
    z_from, z_to = codes[pairs[:, 0]], codes[pairs[:, 1]]
    found = search(space, pool, z_from, z_to, int(s.n_steps), float(s.eps))
    areas = found.areas
    before = pool.calls, pool.points
    traced = trace_areas(space, pool, areas, z_from, z_to, int(s.refine_rounds), int(s.refine_segments),
                         int(s.refine_steps), float(s.refine_eps), ctx.seed)
    search_time = time.perf_counter() - start
    counts = {"model_queries": pool.calls, "points_queried": pool.points, "search_time_s": search_time,
              "bisection_rounds": found.rounds,
              "tracing": {**_tracing(traced, s), "model_queries": pool.calls - before[0],
                          "points_queried": pool.points - before[1]}}
    log.info("%d discrepancy areas on %d of %d segments, %d more traced on %d segments (%d pool queries, "
             "%d points, %.1f s)", len(areas), len(np.unique(areas.segment)), len(pairs), len(traced.areas),
             len(traced.z_from), pool.calls, pool.points, search_time)

    border_check = _check_borders(space, pool, join_areas([areas, traced.areas]))
    realism = _realism(space, train, test, codes, pairs, int(s.realism_points), ctx.seed)
    names = pool.names
    class_pairs = _class_pairs(areas, data.num_classes)
    result = DiscrepancyResult(metrics={})
    result.arrays[f"{INTERVALS}.npz"], result.files[f"{INTERVALS}.json"] = _intervals(areas, pairs, names, train,
                                                                                       space.name)
    if len(traced.z_from):
        result.arrays[f"{TRACED}.npz"] = {**traced.arrays(), "model_names": np.array(names), "space": np.array(space.name)}
    draw = _Drawing(result, s, space, pool, data, codes, pairs, areas, traced.areas)
    figures = draw.figures(train, class_pairs)
    explained = _explain_one(space, pool, test, areas, pairs, int(s.explain_index), int(s.n_nearest)) \
        if s.explain_index is not None else None
    if explained is not None:
        x = test.x[explained["index"]][None]
        shown, captions = [x], ["the image"]
        if space.name == "latent":
            shown, captions = [x, space.decode(space.encode(x))], ["the image", "its reconstruction"]
        if len(data.input_shape) == 3:
            figures["explained_image"] = result.add_figure(
                image_row(torch.cat(shown), captions, f"test #{explained['index']}"), "explained_image")
        figures["explained"] = [draw.strip(seg, f"explain_{k}") for k, seg in enumerate(explained["segments"])]

    result.metrics = {
        "command": "discrepancy",
        "dataset": data.summary(),
        "seed": ctx.seed,
        "space": space.name,
        **agreement,
        "accuracy_match": matched,
        "vae": vae,
        "anchors": {"n": int(len(anchors)), "choice": str(s.anchor_choice), "neighbours": int(s.neighbours)},
        "search": {"n_steps": int(s.n_steps), "eps": float(s.eps)},
        "n_areas_with_traced": int(len(areas) + len(traced.areas)),
        **summary(areas, len(pairs)),
        **counts,
        "border_check": border_check,
        "class_pairs": {f"{data.class_names[a]}|{data.class_names[b]}": int(class_pairs[a, b])
                        for a, b in zip(*np.nonzero(np.triu(class_pairs)))},
        "realism": realism,
        "intervals_file": f"{INTERVALS}.npz",
        "explained": explained,
        "figures": figures,
    }
    return result


class DiscrepancyRunner:
    """The CLI's `xai discrepancy`: the configured classifiers, space (`space=`) and generator."""

    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = DiscrepancySettings.of(OmegaConf.to_container(cfg.discrepancy, resolve=True))  # type: ignore[arg-type]
        space = instantiate(cfg.space)
        ctx = RunContext.from_config(cfg)
        check_inputs(ctx, len(cfg.classifiers), s)
        models = ctx.trained(specs_from(cfg.classifiers))
        generator = ModelSpec(chosen("generator"), cfg.generator) if space.needs_generator else None
        result = find_discrepancies(ctx, models, space, s, generator)
        save_result(result, report.run_dir)
        return result.metrics


class _Drawing:
    """The figures of one search: segment strips, the area and class-pair plots, the plane for 2-D data."""

    def __init__(self, result: DiscrepancyResult, s: DiscrepancySettings, space: Any, pool: ModelPool,
                 data: ArrayDataModule, codes: torch.Tensor, pairs: np.ndarray, areas: Areas, traced: Areas) -> None:
        self.result, self.s, self.space, self.pool, self.data = result, s, space, pool, data
        self.codes, self.pairs, self.areas, self.traced = codes, pairs, areas, traced

    def figures(self, train: Split, class_pairs: np.ndarray) -> dict[str, Any]:
        areas, data = self.areas, self.data
        out: dict[str, Any] = {"segments": []}
        if len(areas):
            self.result.add_figure(area_lengths(areas.t_end - areas.t_start, f"{len(areas)} discrepancy areas"),
                                   "area_lengths")
            self.result.add_figure(heatmap(class_pairs, data.class_names, data.class_names,
                                           "areas between each pair of predicted classes", value_format="{:d}",
                                           cmap="Reds"), "class_pairs")
        if len(data.input_shape) == 3:
            shown = _segments_to_show(areas, int(self.s.n_shown))
            out["segments"] = [self.strip(seg, f"segment_{k}") for k, seg in enumerate(shown)]
        elif data.input_shape == (2,):
            out["plane"] = self.plane(train)
        return out

    def strip(self, segment: int, name: str) -> dict[str, Any]:
        """Evenly spaced positions plus the refined borders of the segment's areas, decoded and re-queried."""
        areas, pairs, data = self.areas, self.pairs, self.data
        mine = areas.segment == segment
        t = np.unique(np.concatenate([np.linspace(0, 1, int(self.s.figure_columns)), areas.t_start[mine],
                                      areas.t_end[mine]]))
        i, j = (int(v) for v in pairs[segment])
        z = interpolate(self.codes[[i]], self.codes[[j]], torch.as_tensor(t, dtype=torch.float32))[0]
        images = self.space.decode(z)
        predictions = self.pool.predict(images)
        inside = ~unanimous(predictions)
        y = data.split("train").y
        title = (f"training #{i} (label {data.class_names[int(y[i])]}) → #{j} (label {data.class_names[int(y[j])]}), "
                 f"{self.space.name} space")
        path = self.result.add_figure(segment_strip(images, t, inside, predictions, self.pool.names,
                                                    data.class_names, title), name)
        return {"path": path, "segment": int(segment), "from_index": i, "to_index": j,
                "areas": [[float(a), float(b)] for a, b in zip(areas.t_start[mine], areas.t_end[mine])]}

    def plane(self, train: Split) -> str:
        pool, pairs = self.pool, self.pairs
        areas = join_areas([self.areas, self.traced])
        x = train.x.numpy()
        lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
        disagrees = ~unanimous(pool.predict(grid)).reshape(gx.shape)
        c = self.codes.numpy()
        shown = pairs[:300]
        area_ends = np.stack([areas.z_start_in, areas.z_end_in], 1) if len(areas) else np.zeros((0, 2, 2))
        fig = plane_figure(gx, gy, disagrees, x, train.y.numpy(), np.stack([c[shown[:, 0]], c[shown[:, 1]]], 1),
                           area_ends, f"{' vs '.join(pool.names)}: {len(self.areas)} areas on {len(pairs)} segments"
                           + (f", {len(self.traced)} traced" if len(self.traced) else ""))
        return self.result.add_figure(fig, "plane")


# --- the report -----------------------------------------------------------------------------------------
def render(metrics: dict[str, Any], has_figure: Any) -> Document:
    """The discrepancy report from its metrics; `has_figure(path)` says which figures exist."""
    ds = metrics["dataset"]
    names = list(metrics["models"])
    doc = Document(f"xai discrepancy — {ds['name']}")
    doc.paragraph(f"Where do {' and '.join(names)} disagree? Segments join training instances to their nearest "
                  f"neighbours that some model labels otherwise, in the {metrics['space']} space"
                  f"{' of a β-VAE' if metrics['space'] == 'latent' else ''}; along each, the positions where "
                  "the models' predictions are not unanimous form discrepancy areas, whose borders are refined "
                  f"by bisection to ε = {metrics['search']['eps']} (in t, the position along the segment).")
    explained = metrics.get("explained")
    if explained:
        doc.heading(f"Test image #{explained['index']}: the nearest discrepancy areas")
        preds = ", ".join(f"{m} {p}" for m, p in explained["predictions"].items())
        doc.paragraph(f"True label {explained['label']}; predictions: {preds}. The areas below lie nearest "
                      f"to its code in the {metrics['space']} space: inputs like it on which the models part ways.")
        doc.table(["area", "segment", "t start", "t end", "distance", "predictions inside"],
                  [[a["area"], a["segment"], a["t_start"], a["t_end"], a["distance"],
                    ", ".join(f"{m} {p}" for m, p in a["predictions_inside"].items())] for a in explained["nearest"]])
        if metrics["figures"].get("explained_image"):
            doc.figure(metrics["figures"]["explained_image"], f"Test image #{explained['index']}.")
        for fig in metrics["figures"].get("explained", []):
            doc.figure(fig["path"], "Red frames: the models disagree.", wide=True)
    doc.heading("Models")
    doc.table(["model", "test accuracy", "source"],
              [[m, v["accuracy"]["test"], source_of(v)]
               for m, v in metrics["models"].items()])
    doc.paragraph(f"The models disagree on {metrics['disagreement_rate']:.2%} of the {ds['sizes']['test']:,} "
                  f"test images; their accuracies differ by {metrics['accuracy_gap']:.2%}.")
    match = metrics.get("accuracy_match")
    if match:
        stand_ins = [f"{n} by its epoch {v['epoch']} (validation accuracy {v['accuracy']:.2%}; {v['final_accuracy']:.2%} "
                     "after its last epoch)" if v["epoch"] != "final" else f"{n} as it is ({v.get('note', 'its last epoch is nearest')})"
                     for n, v in match["models"].items()]
        doc.paragraph(f"Accuracy matching: the models are compared at equal accuracy, as DIG does. "
                      f"{match['target']} has the lowest validation accuracy ({match['target_accuracy']:.2%}); "
                      f"{'; '.join(stand_ins)}. The accuracies above are the matched models'.")
    if metrics["accuracy_gap_warning"]:
        doc.paragraph(f"Warning: {metrics['accuracy_gap_warning']}")
    doc.table(["true class", "disagreement"], [[c, r] for c, r in metrics["disagreement_by_class"].items()])
    if metrics["vae"]:
        v = metrics["vae"]
        doc.heading("The β-VAE")
        doc.paragraph(f"Latent size {v['latent_dim']}, β = {v['beta']}, {'from the store' if v['from_store'] else 'trained now'} "
                      f"({v['train_time_s']:.0f} s). On the test images: reconstruction error {v['recon_error']:.4f} "
                      f"(mean squared error per pixel; predicting the mean image gives {v['mean_image_mse']:.4f}), "
                      f"KL {v['kl']:.2f} nats per image.")
    doc.heading("Discrepancy areas")
    doc.table(["segments", "with an area", "areas", "areas per 1,000 segments", "median length (t)",
               "pool queries", "points queried", "search (s)"],
              [[metrics["n_segments"], metrics["n_segments_with_discrepancy"], metrics["n_areas"],
                metrics["areas_per_1000_segments"], metrics["area_length_t"]["median"], metrics["model_queries"],
                metrics["points_queried"], metrics["search_time_s"]]])
    bc = metrics["border_check"]
    doc.paragraph(f"{metrics['anchors']['n']} anchors ({metrics['anchors']['choice']}), each joined to its "
                  f"{metrics['anchors']['neighbours']} nearest counterfactual neighbours; a grid of "
                  f"{metrics['search']['n_steps']} points per segment, then {metrics['bisection_rounds']} bisection "
                  f"rounds. Border check (every saved border point decoded and queried again): "
                  f"{bc['inside_ok']}/{bc['inside']} inside points non-unanimous, {bc['outside_ok']}/"
                  f"{bc['outside']} outside points unanimous. The areas are in {metrics['intervals_file']} "
                  "and intervals.json.")
    tracing = metrics.get("tracing")
    if tracing and tracing["n_segments"]:
        doc.paragraph(f"Tracing: each area found was followed sideways, {tracing['rounds_run']} rounds "
                      f"(of {tracing['rounds']}) of short segments parallel to the one that crossed it, shifted by "
                      f"{tracing['offset']:.3g} (the median spacing of the training codes) and kept near the data: "
                      f"{tracing['n_segments']:,} traced segments of {tracing['n_steps']} points found "
                      f"{tracing['n_areas']:,} more areas ({tracing['areas_file']}; borders to ε = {tracing['eps']} "
                      "in t). The counts and figures above are of the counterfactual segments; the border check "
                      "and the plane include the traced areas.")
    for path, caption in (("figures/area_lengths.png", "How long the areas are, as a share of their segment."),
                          ("figures/class_pairs.png", "Which classes the models give inside each area.")):
        if has_figure(path):
            doc.figure(path, caption)
    if metrics["figures"].get("plane"):
        doc.figure(metrics["figures"]["plane"], "Shaded: where the models disagree on a dense grid. Grey: "
                   "segments searched; red: the discrepancy areas found on them.")
    if metrics["figures"]["segments"]:
        doc.heading("Segments with the longest areas")
        doc.paragraph("Each row walks one segment: the ends are the two training instances"
                      f"{' (their VAE reconstructions)' if metrics['space'] == 'latent' else ''}; red frames mark "
                      "inputs inside a discrepancy area; under each image, every model's prediction.")
        for fig in metrics["figures"]["segments"]:
            doc.figure(fig["path"], f"Segment {fig['segment']}: areas at t = "
                       + ", ".join(f"[{a:.3f}, {b:.3f}]" for a, b in fig["areas"]), wide=True)
    doc.heading("How realistic are the inputs searched?")
    doc.paragraph("Points from the middle half of the same segments, walked in each space, beside real test "
                  "images: RMS distance per feature to the nearest training image other than the segment's two "
                  "ends, and where there is a VAE, to the VAE's own reconstruction of the point (how far it "
                  "lies from the learned image manifold). Lower is more like real data.")
    rows = []
    for label, r in metrics["realism"].items():
        vae_col = r.get("vae_reconstruction")
        rows.append([label, r["nearest_training"]["mean"], vae_col["mean"] if vae_col else None,
                     r["nearest_training"]["n"]])
    doc.table(["points", "nearest training image", "VAE reconstruction error", "n"], rows)
    return doc


# --- steps of the analysis ------------------------------------------------------------------------------
def _why_no_epochs(m: Model) -> str:
    if m.stored is None or m.spec is None:
        return "not trained into the store (a given model or a file)"
    if "snapshots" not in m.stored.meta:
        return "stored before xai kept earlier epochs: remove its store entry to retrain it"
    return "no earlier epochs (a scikit-learn model, a single epoch, or stored with paths.store_keep_epochs=false)"


def match_accuracies(ctx: RunContext, models: Mapping[str, Model]) -> tuple[dict[str, Model], dict[str, Any]]:
    """Models of equal accuracy, as DIG compares them: every model stronger than the weakest (on the validation
    split, never the test set) stands in by the epoch of its own training whose validation accuracy is
    nearest the weakest's. Models without kept epochs (scikit-learn ones, files, entries stored before xai
    kept epochs) stay as they are, with the reason recorded."""
    val = {name: ctx.accuracy(m, "val") for name, m in models.items()}
    target = min(val, key=lambda n: val[n])
    out = dict(models)
    record: dict[str, Any] = {"split": "val", "target": target, "target_accuracy": val[target], "models": {}}
    for name, m in models.items():
        if name == target:
            continue
        kept = (m.stored.meta.get("snapshots") or []) if m.stored is not None and m.spec is not None else []
        entry: dict[str, Any] = {"final_accuracy": val[name], "epoch": "final", "accuracy": val[name]}
        if not kept:
            entry["note"] = _why_no_epochs(m)
            log.warning("accuracy matching: %s stays as it is, %s", name, entry["note"])
            record["models"][name] = entry
            continue
        candidates: dict[str, tuple[Any, float]] = {"final": (m.classifier, val[name])}
        for snap in kept:
            model = ctx.store.snapshot(m.stored, m.spec.config, ctx.seed, int(snap["epoch"]))
            if isinstance(model, torch.nn.Module):
                model.to(ctx.device)
            candidates[str(snap["epoch"])] = (model, ctx.accuracy(model, "val"))
        best = min(candidates, key=lambda k: abs(candidates[k][1] - val[target]))
        entry.update(epoch=best, accuracy=candidates[best][1],
                     epochs={k: acc for k, (_, acc) in candidates.items()})
        out[name] = Model(name, candidates[best][0], m.source, m.spec, m.stored,
                          None if best == "final" else int(best))
        log.info("accuracy matching: %s stands in by epoch %s (validation accuracy %.4f; %s: %.4f)", name, best,
                 candidates[best][1], target, val[target])
        record["models"][name] = entry
    return out, record


def _model_agreement(pool: ModelPool, test: Split, class_names: Sequence[str], max_gap: float) -> dict[str, Any]:
    preds = pool.predict(test.x)
    y = test.y.numpy()
    accuracy = {n: float((p == y).mean()) for n, p in zip(pool.names, preds)}
    disagree = ~unanimous(preds)
    gap = max(accuracy.values()) - min(accuracy.values())
    warning = None
    if gap > max_gap:
        warning = (f"the models' test accuracies differ by {gap:.2%} (more than discrepancy.max_accuracy_gap = "
                   f"{max_gap:.2%}): DIG compares models of similar performance, so areas may mostly show the "
                   "weaker model's errors")
        log.warning(warning)
    return {
        "models": {n: {"accuracy": {"test": a}} for n, a in accuracy.items()},
        "accuracy_gap": gap,
        "accuracy_gap_warning": warning,
        "disagreement_rate": float(disagree.mean()),
        "disagreement_by_class": {name: float(disagree[y == c].mean()) if (y == c).any() else None
                                  for c, name in enumerate(class_names)},
    }


def _tracing(traced: Traced, s: DiscrepancySettings) -> dict[str, Any]:
    return {"rounds": int(s.refine_rounds), "rounds_run": traced.rounds, "n_segments": int(len(traced.z_from)),
            "n_steps": int(s.refine_steps), "eps": float(s.refine_eps), "offset": traced.offset,
            "n_areas": int(len(traced.areas)), "areas_file": f"{TRACED}.npz" if len(traced.z_from) else None}


def _check_borders(space: Any, pool: ModelPool, areas: Areas) -> dict[str, int]:
    """Decode every saved border point again: inside ones must split the pool, outside ones must not."""
    inside = np.concatenate([areas.z_start_in, areas.z_end_in])
    outside = np.concatenate([areas.z_start_out, areas.z_end_out])
    outside = outside[np.isfinite(outside).all(1)]
    ok_in = ~unanimous(pool.predict(space.decode(torch.as_tensor(inside)))) if len(inside) else np.zeros(0, bool)
    ok_out = unanimous(pool.predict(space.decode(torch.as_tensor(outside)))) if len(outside) else np.zeros(0, bool)
    if not ok_in.all() or not ok_out.all():
        log.warning("border check: %d inside and %d outside points are not where the search put them",
                    int((~ok_in).sum()), int((~ok_out).sum()))
    return {"inside": int(len(ok_in)), "inside_ok": int(ok_in.sum()), "outside": int(len(ok_out)),
            "outside_ok": int(ok_out.sum())}


def _realism(space: Any, train: Split, test: Split, codes: torch.Tensor, pairs: np.ndarray, n: int,
             seed: int) -> dict[str, dict[str, Any]]:
    """How real the searched inputs look: points in the middle half of the same segments, walked in each space,
    beside real test images. Columns: distance to the nearest other training image, and (with a VAE) the
    distance to the VAE's manifold (reconstruction error)."""
    if not len(pairs):
        return {}
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, len(pairs), n)
    t = torch.as_tensor(rng.uniform(0.25, 0.75, n), dtype=torch.float32)
    i, j = torch.as_tensor(pairs[seg, 0]), torch.as_tensor(pairs[seg, 1])
    sets = {"real test images": (test.x[np.sort(rng.choice(len(test), min(n, len(test)), replace=False))], None)}
    if space.name == "latent":
        sets["latent segments (DIG-CV)"] = (space.decode(interpolate(codes[i], codes[j], t[:, None])[:, 0]), pairs[seg])
    sets["straight segments in input space (DIG)"] = (
        train.x[i] + t.view(-1, *[1] * (train.x.dim() - 1)) * (train.x[j] - train.x[i]), pairs[seg])
    out = {}
    for label, (points, ends) in sets.items():
        out[label] = {"nearest_training": describe(nearest_distance(points, train.x, ends))}
        if space.name == "latent":
            out[label]["vae_reconstruction"] = describe(reconstruction_error(points, space.encode, space.decode))
    return out


def _class_pairs(areas: Areas, num_classes: int) -> np.ndarray:
    """Symmetric (K, K) counts: each area adds one to every pair of distinct classes the models give inside it."""
    counts = np.zeros((num_classes, num_classes), dtype=int)
    for row in areas.pred_start_in:
        for a, b in combinations(sorted(set(row.tolist())), 2):
            counts[a, b] += 1
            counts[b, a] += 1
    return counts


def _segments_to_show(areas: Areas, n: int) -> list[int]:
    """Segments on which the models agree at both ends, one per class pair first, longest area first: the
    figure a reader needs, an agreed input morphing through disagreement into another agreed input."""
    open_ends = ~(np.isfinite(areas.t_start_out) & np.isfinite(areas.t_end_out))
    touches_end = np.zeros(int(areas.segment.max()) + 1 if len(areas) else 0, dtype=bool)
    np.logical_or.at(touches_end, areas.segment, open_ends)
    order = np.lexsort((-(areas.t_end - areas.t_start), touches_end[areas.segment]))
    seen_pairs: set[tuple[int, ...]] = set()
    first, rest = [], []
    for k in order:
        pair = tuple(sorted(set(areas.pred_start_in[k].tolist())))
        (rest if pair in seen_pairs else first).append(int(areas.segment[k]))
        seen_pairs.add(pair)
    return list(dict.fromkeys(first + rest))[:n]


def _explain_one(space: Any, pool: ModelPool, test: Split, areas: Areas, pairs: np.ndarray, index: int,
                 n_nearest: int) -> dict[str, Any]:
    """The areas nearest one test image's code: distance from the code to each area's inside stretch."""
    x = test.x[index : index + 1]
    z = space.encode(x)[0].numpy()
    preds = pool.predict(x)[:, 0]
    out: dict[str, Any] = {"index": index, "label": int(test.y[index]),
                           "predictions": {n: int(p) for n, p in zip(pool.names, preds)}, "nearest": [], "segments": []}
    if not len(areas):
        return out
    a, b = areas.z_start_in.astype(np.float64), areas.z_end_in.astype(np.float64)
    ab = b - a
    t = np.clip(((z - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
    distance = np.linalg.norm(a + t[:, None] * ab - z, axis=1)
    for k in np.argsort(distance, kind="stable")[:n_nearest]:
        out["nearest"].append({"area": int(k), "segment": int(areas.segment[k]), "t_start": float(areas.t_start[k]),
                               "t_end": float(areas.t_end[k]), "distance": float(distance[k]),
                               "predictions_inside": {n: int(p) for n, p in zip(pool.names, areas.pred_start_in[k])}})
    out["segments"] = list(dict.fromkeys(a["segment"] for a in out["nearest"]))
    return out


def _intervals(areas: Areas, pairs: np.ndarray, names: list[str], train: Split,
               space: str) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of intervals.npz (border points included) and the text of intervals.json (one record per area)."""
    arrays = areas.arrays()
    from_index, to_index = pairs[areas.segment, 0], pairs[areas.segment, 1]
    saved = {**arrays, "from_index": from_index, "to_index": to_index, "segments": pairs,
             "model_names": np.array(names), "space": np.array(space)}
    small = areas.z_start_in.shape[1] <= 64  # border points of 784-d inputs stay in the npz only

    def point(v: np.ndarray) -> list[float] | None:
        return None if not np.isfinite(v).all() else [round(float(c), 6) for c in v]

    records = []
    for k in range(len(areas)):
        record: dict[str, Any] = {
            "area": k, "segment": int(areas.segment[k]), "from_index": int(from_index[k]), "to_index": int(to_index[k]),
            "from_label": int(train.y[from_index[k]]), "to_label": int(train.y[to_index[k]]),
            "t_start": float(areas.t_start[k]), "t_end": float(areas.t_end[k]),
            "t_start_out": None if np.isnan(areas.t_start_out[k]) else float(areas.t_start_out[k]),
            "t_end_out": None if np.isnan(areas.t_end_out[k]) else float(areas.t_end_out[k]),
            "predictions": {n: {"start_inside": int(areas.pred_start_in[k, m]),
                                "start_outside": int(areas.pred_start_out[k, m]),
                                "end_inside": int(areas.pred_end_in[k, m]),
                                "end_outside": int(areas.pred_end_out[k, m])} for m, n in enumerate(names)},
        }
        if small:
            record["points"] = {key: point(arrays[f"z_{key}"][k])
                                for key in ("start_in", "start_out", "end_in", "end_out")}
        records.append(record)
    return saved, json.dumps({"space": space, "models": names, "areas": records}, indent=1)
