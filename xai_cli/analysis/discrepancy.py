"""`xai discrepancy` (DIG-CV): where do models of similar accuracy disagree, and what do those inputs look like?

Pipeline: accuracies and test-set disagreement → a space to search in (the β-VAE's latent space, or the
raw inputs) → counterfactual segments between training instances → the batched search for discrepancy
areas (xai_cli.dig.search) → border checks, realism, figures, intervals.npz/.json and the report.
"""

from __future__ import annotations

import io
import json
import logging
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from xai_cli.data.base import ArrayDataModule, Split
from xai_cli.dig.pool import ModelPool, unanimous
from xai_cli.dig.realism import describe, nearest_distance, reconstruction_error
from xai_cli.dig.search import Areas, search, summary
from xai_cli.dig.segments import choose_anchors, counterfactual_segments
from xai_cli.dig.space import interpolate
from xai_cli.errors import UserError
from xai_cli.report.dig_figures import area_lengths, image_row, plane_figure, segment_strip
from xai_cli.report.document import Document
from xai_cli.report.figures import heatmap
from xai_cli.report.writer import RunReport, atomic_write
from xai_cli.training.store import load_classifiers

log = logging.getLogger("xai")

INTERVALS = "intervals"


def build_segments(cfg: DictConfig, data: ArrayDataModule, pool: ModelPool) -> tuple[Any, Any, torch.Tensor,
                                                                                     np.ndarray, np.ndarray]:
    """The search's inputs: the space (and what it reports), the training codes, anchors and segments."""
    s = cfg.discrepancy
    train = data.split("train")
    space = instantiate(s.spaces[s.space])
    vae = space.prepare(cfg, data)
    codes = space.encode(train.x)
    train_probs = np.stack([np.asarray(m.predict_proba(train.x)) for m in pool.models.values()])
    train_preds = train_probs.argmax(2)
    anchors = choose_anchors(train_preds, train_probs.max(2).min(0), int(s.anchors), str(s.anchor_choice),
                             int(cfg.seed))
    if s.explain_index is not None:
        # DIG explains one input by the areas around it: start segments from its nearest training instances too
        z = space.encode(data.split("test").x[int(s.explain_index)][None])
        near = torch.cdist(z, codes)[0].argsort()[: int(s.explain_anchors)].numpy()
        anchors = np.union1d(anchors, near)
    pairs = counterfactual_segments(codes, train_preds, anchors, int(s.neighbours))
    log.info("%d anchors, %d counterfactual segments in the %s space", len(anchors), len(pairs), space.name)
    return space, vae, codes, anchors, pairs


class DiscrepancyRunner:
    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = cfg.discrepancy
        if s.space not in s.spaces:
            raise UserError(f"discrepancy.space={s.space} is not a space: choose one of {', '.join(s.spaces)}")
        if len(cfg.classifiers) < 2:
            raise UserError("xai discrepancy compares models: choose at least two, e.g. 'classifiers=[cnn,svm_rbf]'")
        data: ArrayDataModule = instantiate(cfg.dataset)
        data.setup()
        train, test = data.split("train"), data.split("test")
        if s.explain_index is not None and not 0 <= int(s.explain_index) < len(test):
            raise UserError(f"discrepancy.explain_index={s.explain_index} out of range: the test split has "
                            f"{len(test)} images")
        stored = load_classifiers(cfg, data)
        pool = ModelPool({name: sm.model for name, sm in stored.items()})
        models = _model_agreement(pool, test, data.num_classes, float(s.max_accuracy_gap))
        for name, sm in stored.items():
            models["models"][name]["from_store"] = not sm.trained_now

        space, vae, codes, anchors, pairs = build_segments(cfg, data, pool)

        pool.calls = pool.points = 0
        start = time.perf_counter()
        result = search(space, pool, codes[pairs[:, 0]], codes[pairs[:, 1]], int(s.n_steps), float(s.eps))
        search_time = time.perf_counter() - start
        areas = result.areas
        counts = {"model_queries": pool.calls, "points_queried": pool.points, "search_time_s": search_time,
                  "bisection_rounds": result.rounds}
        log.info("%d discrepancy areas on %d of %d segments (%d pool queries, %d points, %.1f s)", len(areas),
                 len(np.unique(areas.segment)), len(pairs), pool.calls, pool.points, search_time)

        border_check = _check_borders(space, pool, areas)
        realism = _realism(space, train, test, codes, pairs, int(s.realism_points), int(cfg.seed))
        names = pool.names
        class_pairs = _class_pairs(areas, data.num_classes)
        _save_intervals(report.run_dir, areas, pairs, names, train, space.name)

        figures = self._figures(report, s, space, pool, data, train, codes, pairs, areas, class_pairs)
        explained = _explain_one(space, pool, test, areas, pairs, int(s.explain_index), int(s.n_nearest)) \
            if s.explain_index is not None else None
        if explained is not None:
            x = test.x[explained["index"]][None]
            shown, captions = [x], ["the image"]
            if space.name == "latent":
                shown, captions = [x, space.decode(space.encode(x))], ["the image", "its reconstruction"]
            if len(data.input_shape) == 3:
                figures["explained_image"] = report.save_figure(
                    image_row(torch.cat(shown), captions, f"test #{explained['index']}"), "explained_image")
            figures["explained"] = [self._strip(report, s, space, pool, data, codes, pairs, areas, seg,
                                                f"explain_{k}") for k, seg in enumerate(explained["segments"])]

        metrics = {
            "command": "discrepancy",
            "dataset": data.summary(),
            "seed": int(cfg.seed),
            "space": space.name,
            **models,
            "vae": vae,
            "anchors": {"n": int(len(anchors)), "choice": str(s.anchor_choice), "neighbours": int(s.neighbours)},
            "search": {"n_steps": int(s.n_steps), "eps": float(s.eps)},
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
        report.write(metrics, self.render(metrics, report.run_dir))
        return metrics

    # --- figures --------------------------------------------------------------------------------------
    def _figures(self, report: RunReport, s: DictConfig, space: Any, pool: ModelPool, data: ArrayDataModule,
                 train: Split, codes: torch.Tensor, pairs: np.ndarray, areas: Areas,
                 class_pairs: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {"segments": []}
        if len(areas):
            report.save_figure(area_lengths(areas.t_end - areas.t_start, f"{len(areas)} discrepancy areas"),
                               "area_lengths")
            report.save_figure(heatmap(class_pairs, data.class_names, data.class_names,
                                       "areas between each pair of predicted classes", value_format="{:d}",
                                       cmap="Reds"), "class_pairs")
        if len(data.input_shape) == 3:
            shown = _segments_to_show(areas, int(s.n_shown))
            out["segments"] = [self._strip(report, s, space, pool, data, codes, pairs, areas, seg, f"segment_{k}")
                               for k, seg in enumerate(shown)]
        elif data.input_shape == (2,):
            out["plane"] = self._plane(report, pool, train, codes, pairs, areas)
        return out

    @staticmethod
    def _strip(report: RunReport, s: DictConfig, space: Any, pool: ModelPool, data: ArrayDataModule,
               codes: torch.Tensor, pairs: np.ndarray, areas: Areas, segment: int, name: str) -> dict[str, Any]:
        """Evenly spaced positions plus the refined borders of the segment's areas, decoded and re-queried."""
        mine = areas.segment == segment
        t = np.unique(np.concatenate([np.linspace(0, 1, int(s.figure_columns)), areas.t_start[mine],
                                      areas.t_end[mine]]))
        i, j = (int(v) for v in pairs[segment])
        z = interpolate(codes[[i]], codes[[j]], torch.as_tensor(t, dtype=torch.float32))[0]
        images = space.decode(z)
        predictions = pool.predict(images)
        inside = ~unanimous(predictions)
        y = data.split("train").y
        title = (f"training #{i} (label {data.class_names[int(y[i])]}) → #{j} (label {data.class_names[int(y[j])]}), "
                 f"{space.name} space")
        path = report.save_figure(segment_strip(images, t, inside, predictions, pool.names, data.class_names, title),
                                  name)
        return {"path": path, "segment": int(segment), "from_index": i, "to_index": j,
                "areas": [[float(a), float(b)] for a, b in zip(areas.t_start[mine], areas.t_end[mine])]}

    @staticmethod
    def _plane(report: RunReport, pool: ModelPool, train: Split, codes: torch.Tensor, pairs: np.ndarray,
               areas: Areas) -> str:
        x = train.x.numpy()
        lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
        disagrees = ~unanimous(pool.predict(grid)).reshape(gx.shape)
        c = codes.numpy()
        shown = pairs[:300]
        area_ends = np.stack([areas.z_start_in, areas.z_end_in], 1) if len(areas) else np.zeros((0, 2, 2))
        fig = plane_figure(gx, gy, disagrees, x, train.y.numpy(), np.stack([c[shown[:, 0]], c[shown[:, 1]]], 1),
                           area_ends, f"{' vs '.join(pool.names)}: {len(areas)} areas on {len(pairs)} segments")
        return report.save_figure(fig, "plane")

    # --- the report -------------------------------------------------------------------------------------
    @staticmethod
    def render(metrics: dict[str, Any], run_dir: Path) -> Document:
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
                  [[m, v["accuracy"]["test"], "store" if v["from_store"] else "trained now"]
                   for m, v in metrics["models"].items()])
        doc.paragraph(f"The models disagree on {metrics['disagreement_rate']:.2%} of the {ds['sizes']['test']:,} "
                      f"test images; their accuracies differ by {metrics['accuracy_gap']:.2%}.")
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
        for path, caption in (("figures/area_lengths.png", "How long the areas are, as a share of their segment."),
                              ("figures/class_pairs.png", "Which classes the models give inside each area.")):
            if (run_dir / path).is_file():
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
def _model_agreement(pool: ModelPool, test: Split, num_classes: int, max_gap: float) -> dict[str, Any]:
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
        "disagreement_by_class": {str(c): float(disagree[y == c].mean()) if (y == c).any() else None
                                  for c in range(num_classes)},
    }


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


def _save_intervals(run_dir: Path, areas: Areas, pairs: np.ndarray, names: list[str], train: Split,
                    space: str) -> None:
    """intervals.npz (arrays, border points included) and intervals.json (one record per area)."""
    arrays = areas.arrays()
    from_index, to_index = pairs[areas.segment, 0], pairs[areas.segment, 1]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, from_index=from_index, to_index=to_index, segments=pairs,
                        model_names=np.array(names), space=np.array(space))
    atomic_write(run_dir / f"{INTERVALS}.npz", buffer.getvalue())
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
    atomic_write(run_dir / f"{INTERVALS}.json", json.dumps({"space": space, "models": names, "areas": records}, indent=1))
