"""`xai uncertainty`: a generator conditioned on class and on the frozen classifier's confidence (MSP).

Pipeline: the classifier from the model store (frozen) → the MSP of every training image → the conditional
GAN, trained against that classifier into the store → a grid of (class, MSP) conditions, generated and
classified (xai_cli.uncertainty.evaluation) → the MSP-in vs MSP-out scatter, the 2-D picture or sample
grids → the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.data.base import ArrayDataModule
from xai_cli.report.document import Document
from xai_cli.report.uncertainty_figures import msp_scatter, plane_panels, sample_grid
from xai_cli.report.writer import RunReport
from xai_cli.training.store import ModelStore, StoredModel, chosen, to_device
from xai_cli.uncertainty.evaluation import evaluate_grid, msp_grid

log = logging.getLogger("xai")


def _named(cfg: DictConfig, group: str) -> tuple[str, DictConfig]:
    """A model config and its name: the option chosen for `group`, or, for the per-dataset defaults
    (`<group>/for_dataset/<dataset>`), the `name` they declare. The name never enters the store key."""
    plain = OmegaConf.to_container(cfg[group], resolve=True)
    name = plain.pop("name", None) or chosen(group)  # type: ignore[union-attr]
    return str(name), OmegaConf.create(plain)


class UncertaintyRunner:
    def run(self, cfg: DictConfig, report: RunReport) -> dict[str, Any]:
        s = cfg.uncertainty
        data: ArrayDataModule = instantiate(cfg.dataset)
        data.setup()
        train, test = data.split("train"), data.split("test")
        store = ModelStore(cfg.paths.model_dir)
        clf_name, clf_cfg = _named(cfg, "classifier")
        stored = to_device(store.get(clf_name, clf_cfg, data, cfg.dataset, cfg.trainer, int(cfg.seed)))
        classifier = stored.model
        gan_stored = self._gan(cfg, store, data, stored)
        gan = gan_stored.model.eval()

        train_probs = np.asarray(classifier.predict_proba(train.x))
        real_msp = train_probs.max(1)
        # the real conditions, as the GAN was trained on them
        real_labels = torch.from_numpy(train_probs.argmax(1)) if s.condition_class == "predicted" else train.y
        test_probs = np.asarray(classifier.predict_proba(test.x))
        grid = msp_grid(data.num_classes, int(s.grid_points), float(s.msp_low))

        @torch.no_grad()
        def generate(z: torch.Tensor, labels: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
            return gan.generate(z, labels, msp).cpu()

        evaluation, samples = evaluate_grid(generate, classifier.predict_proba, gan.latent_dim, data.num_classes,
                                            grid, int(s.n_per_point), int(cfg.seed))
        log.info("MSP in vs out: Pearson %s, MAE %.3f, class agreement %.3f",
                 "n/a" if evaluation["msp_pearson"] is None else f"{evaluation['msp_pearson']:.3f}",
                 evaluation["msp_mae"], evaluation["class_agreement"])

        agree = samples["label_out"] == samples["label_in"]
        figures = {"msp_scatter": report.save_figure(
            msp_scatter(samples["msp_in"], samples["msp_out"], agree, f"{clf_name}: MSP asked for vs obtained"),
            "msp_scatter")}
        if len(data.input_shape) == 1 and data.input_shape[0] == 2:
            figures["plane"] = report.save_figure(self._plane(gan, real_msp, real_labels, test.x, test_probs,
                                                                        int(cfg.seed)), "plane")
        elif len(data.input_shape) == 3:
            for m in s.shown_msp:
                figures[f"samples_{m}"] = report.save_figure(self._grid(gan, classifier, float(m), data.num_classes,
                                                                        int(s.n_shown), int(cfg.seed)),
                                                             f"samples_msp_{m}")
        fit = gan_stored.meta["fit"]
        metrics = {
            "command": "uncertainty",
            "dataset": data.summary(),
            "seed": int(cfg.seed),
            "classifier": {"name": clf_name, "from_store": not stored.trained_now,
                           "accuracy": {"test": float((test_probs.argmax(1) == test.y.numpy()).mean())}},
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
            "evaluation": evaluation,
            "figures": figures,
        }
        report.write(metrics, self.render(metrics, report.run_dir))
        return metrics

    @staticmethod
    def _gan(cfg: DictConfig, store: ModelStore, data: ArrayDataModule, classifier: StoredModel) -> StoredModel:
        """The GAN learns the classifier's MSPs: the classifier's store key joins its key."""
        name, gen_cfg = _named(cfg, "generator")
        spec = OmegaConf.merge(gen_cfg, {"against": {"classifier": classifier.key}})
        return to_device(store.get(f"{name}_{classifier.name}", spec, data, cfg.dataset, cfg.trainer, int(cfg.seed),
                                   context={"classifier": classifier.model}))

    @staticmethod
    def _plane(gan: Any, real_msp: np.ndarray, real_labels: torch.Tensor, test_x: torch.Tensor, test_probs: np.ndarray,
               seed: int) -> Any:
        """As many generated points as test points, their conditions drawn as in training: the (label, MSP)
        pairs of random training points."""
        rows = np.random.default_rng(seed).integers(0, len(real_msp), len(test_x))
        msp = torch.from_numpy(real_msp[rows]).float()
        with torch.no_grad():
            fake = gan.generate(gan.sample_latent(len(rows), torch.Generator().manual_seed(seed)), real_labels[rows],
                                msp).cpu().numpy()
        return plane_panels(test_x.numpy(), test_probs.max(1), fake, msp.numpy(),
                            "real data and generated data, coloured by MSP")

    @staticmethod
    def _grid(gan: Any, classifier: Any, msp: float, num_classes: int, n_shown: int, seed: int) -> Any:
        """Rows: classes; columns: fixed latents — the same latents for every MSP shown (the seed's Fig. 3)."""
        z = gan.sample_latent(n_shown, torch.Generator().manual_seed(seed)).repeat(num_classes, 1)
        labels = torch.arange(num_classes).repeat_interleave(n_shown)
        with torch.no_grad():
            images = gan.generate(z, labels, torch.full((len(z),), msp)).cpu().clamp(0, 1)
        probs = np.asarray(classifier.predict_proba(images))
        captions = [f"{p} ({q:.2f})" for p, q in zip(probs.argmax(1), probs.max(1))]
        return sample_grid(images, captions, num_classes, f"MSP condition {msp}: rows are the conditioned classes")

    @staticmethod
    def render(metrics: dict[str, Any], run_dir: Path) -> Document:
        ds, c, g, e = metrics["dataset"], metrics["classifier"], metrics["generator"], metrics["evaluation"]
        doc = Document(f"xai uncertainty — {ds['name']}, {c['name']}")
        doc.paragraph(f"{g['name']} ({g['parameters']['generator']:,} generator and {g['parameters']['discriminator']:,} "
                      f"discriminator parameters, {g['steps']} steps, {g['train_time_s']:.0f} s) is conditioned on a "
                      f"class and on {c['name']}'s maximum softmax probability (MSP; the class: the "
                      f"{'classifier' + chr(39) + 's prediction' if metrics['condition_class'] == 'predicted' else 'label'}; test accuracy "
                      f"{c['accuracy']['test']:.4f}, training-set MSP median {metrics['real_msp']['median']:.3f}, "
                      f"{100 * metrics['real_msp']['share_below_0.9']:.1f} % below 0.9). Auxiliary MSP loss weight: "
                      f"{metrics['aux_weight']}.")
        fmt = lambda v: "n/a" if v is None else v  # noqa: E731
        doc.table(["MSP Pearson", "MSP Spearman", "MSP MAE", "class agreement", "samples"],
                  [[fmt(e["msp_pearson"]), fmt(e["msp_spearman"]), e["msp_mae"], e["class_agreement"], e["n_samples"]]])
        doc.table(["MSP condition", "MSP obtained (mean)", "std", "class agreement"],
                  [[p["msp_in"], p["msp_out_mean"], p["msp_out_std"], p["class_agreement"]] for p in e["per_point"]])
        doc.figure(metrics["figures"]["msp_scatter"], "Each point a generated sample: the MSP it was conditioned on "
                   "(jittered) against the classifier's MSP on it; red where the classifier names another class.")
        if "plane" in metrics["figures"]:
            doc.figure(metrics["figures"]["plane"], "Left: test points coloured by the classifier's MSP; right: "
                       "generated points, conditions drawn from real (class, MSP) pairs, coloured by their MSP "
                       "condition. Low-MSP points should sit on the decision boundary.", wide=True)
        for key, path in metrics["figures"].items():
            if key.startswith("samples_"):
                doc.figure(path, "Same latents in every column; above each image the classifier's answer and MSP.")
        return doc
