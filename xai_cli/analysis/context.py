"""What every analysis needs besides its own settings: data, models, the store, the seed.

A runner used to build all of this itself from the Hydra config; now the CLI builds a `RunContext` from the
config and the Python API builds one from the user's objects, and the analysis reads like the analysis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from xai_cli.analysis.kept import explanation_key, kept_array, kept_array_and_record, question_key
from xai_cli.data.base import ArrayDataModule, SplitName
from xai_cli.errors import UserError
from xai_cli.explainers.base import Explainer
from xai_cli.metrics.classification import accuracy
from xai_cli.models.adapters import TorchModuleClassifier, check_contract
from xai_cli.models.classifiers.base import Classifier
from xai_cli.training.store import ModelStore, StoredModel, to_device
from xai_cli.utils.threads import cap_pools

log = logging.getLogger("xai")

Source = Literal["store", "trained now", "given", "file"]
PROBABILITIES = "{split}_probabilities.npy"  # beside a stored model: its outputs on a split's inputs
EXPLANATIONS = "explanations"  # beside a stored model: the maps explainers gave of it, by their key
COUNTERFACTUALS = "counterfactuals"  # beside a stored classifier: what counterfactual methods found for it


@dataclass(frozen=True)
class ModelSpec:
    """How to ask for a model xai trains: the config that determines it (`model` + `fit`) and a human name.

    The store finds the model by the config's content (with the data's, the trainer's and the seed); the
    name only labels the entry and the reports.
    """

    name: str
    config: DictConfig


@dataclass
class Model:
    """A model as an analysis sees it: the classifier, where it came from, and how to draw its random twin."""

    name: str
    classifier: Classifier
    source: Source
    spec: ModelSpec | None = None
    stored: StoredModel | None = None
    epoch: int | None = None  # an earlier epoch of the stored model standing in for it (accuracy matching)

    @property
    def from_store(self) -> bool:
        return self.source == "store"

    def random_copy(self, seed: int) -> Classifier | None:
        """The same architecture with fresh random weights (None for models without weights to randomise)."""
        if not isinstance(self.classifier, nn.Module):
            return None
        if isinstance(self.classifier, TorchModuleClassifier):
            return self.classifier.random_copy(seed)
        if self.spec is None:
            return None
        torch.manual_seed(seed)
        device = next(self.classifier.parameters()).device
        return instantiate(self.spec.config.model).to(device).eval()

    def describe(self) -> dict[str, Any]:
        """What reports say about where the model came from."""
        out: dict[str, Any] = {"from_store": self.from_store, "source": self.source}
        if self.stored is not None:
            out["store_entry"] = self.stored.path.name
        if self.epoch is not None:
            out["epoch"] = self.epoch
        file_info = getattr(self.classifier, "file_info", None)
        if callable(file_info):
            out.update(file_info())
        return out


@dataclass
class RunContext:
    """The data, the model store, the trainer settings and the seed of one run."""

    data: ArrayDataModule
    store: ModelStore
    trainer: DictConfig
    seed: int = 0
    # this run's probabilities by (classifier id, split) -> (classifier, probabilities), for models the store does
    # not keep them for: e.g. the GAN's fit and the analysis ask for the same training-set array
    _probabilities: dict[tuple[int, str], tuple[Any, np.ndarray]] = field(default_factory=dict, repr=False,
                                                                          compare=False)

    def __post_init__(self) -> None:
        cap_pools()  # every analysis, CLI or API, starts here: no more threads than CPUs it may use

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "RunContext":
        """The CLI's context: the configured dataset (its config is its store identity), store and trainer."""
        from xai_cli.datasets import build

        return cls(build(cfg.dataset), ModelStore.from_paths(cfg.paths), trainer_config(cfg), int(cfg.seed))

    @property
    def dataset_cfg(self) -> DictConfig:
        identity = self.data.store_identity()
        return identity if isinstance(identity, DictConfig) else OmegaConf.create(identity)

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # --- models ---------------------------------------------------------------------------------------
    def fetch(self, spec: ModelSpec, context: dict[str, Any] | None = None) -> StoredModel:
        """The model of `spec` from the store, trained into it first if missing; on the GPU if there is one."""
        return to_device(self.store.get(spec.name, spec.config, self.data, self.dataset_cfg, self.trainer,
                                        self.seed, context))

    def trained(self, specs: Sequence[ModelSpec]) -> dict[str, Model]:
        """The models of `specs`: fixed ones (a config without `fit`, e.g. classifier=file) loaded and checked
        against the data first, so that a mismatch is refused before anything trains; the others from the
        store, trained into it if missing."""
        fixed = {spec.name: self.fixed(spec) for spec in specs if is_fixed(spec.config)}
        out = {}
        for spec in specs:
            if spec.name in fixed:
                out[spec.name] = fixed[spec.name]
                continue
            stored = self.fetch(spec)
            out[spec.name] = Model(spec.name, stored.model, "trained now" if stored.trained_now else "store", spec,
                                   stored)
        return out

    def fixed(self, spec: ModelSpec) -> Model:
        """A model its config builds ready-trained (classifier=file), checked against the data."""
        classifier = instantiate(spec.config.model)
        self.check(spec.name, classifier)
        if isinstance(classifier, nn.Module):
            classifier.to(self.device)
        return Model(spec.name, classifier, "file", spec)

    def check(self, name: str, classifier: Classifier) -> None:
        """A model must take this data's inputs and give one probability per class (one line if not)."""
        check_contract(name, classifier, self.data.split("test").x[:4], self.data.num_classes, self.data.class_names)

    # --- what every runner used to write itself -------------------------------------------------------
    def accuracy(self, model: Model | Classifier, split: SplitName = "test") -> float:
        """Accuracy on a split; a stored model's from the probabilities its entry keeps (a warm consistency run
        measured every copy's test accuracy anew)."""
        part = self.data.split(split)
        probs = self.probabilities(model, split) if isinstance(model, Model) else model.predict_proba(part.x)
        return accuracy(np.asarray(probs), part.y.numpy())

    def train_probabilities(self, model: Model) -> np.ndarray:
        """The model's class probabilities on every training input (analyses that pick inputs by the models'
        confidence need them; on MNIST they cost a CNN and an SVM about 18 s)."""
        return self.probabilities(model, "train")

    def probabilities(self, model: Model, split: SplitName) -> np.ndarray:
        """The model's class probabilities on a split's inputs, kept in its store entry after the first time and
        read back exactly as written (no pickle), so warm and cold runs choose alike."""
        part = self.data.split(split)
        seen = self._probabilities.get((id(model.classifier), split))
        if seen is not None and seen[0] is model.classifier:
            return seen[1]
        path = None
        if model.stored is not None and model.epoch is None:  # an earlier epoch is not what the entry holds
            path = model.stored.path / PROBABILITIES.format(split=split)
        probs = kept_array(path, (len(part), self.data.num_classes),
                           lambda: np.asarray(model.classifier.predict_proba(part.x)), model.name)
        self._probabilities[(id(model.classifier), split)] = (model.classifier, probs)
        return probs

    def explanations(self, model: Model, explainer: Explainer, x: torch.Tensor, target: torch.Tensor,
                     seed: int) -> np.ndarray:
        """The explainer's (N, H, W) maps of `model` for images `x` and classes `target`, torch seeded with
        `seed` first; kept in a stored model's entry under `explanations/` (unless the store says not to), so a
        warm run reads what the same explainer, settings, images and seed gave before."""
        def compute() -> np.ndarray:
            torch.manual_seed(int(seed))
            return explainer.explain(model.classifier, x, target).numpy()

        return kept_array(self._explanation_path(model, explainer, x, target, seed), (len(x), *x.shape[2:]),
                          compute, model.name)

    def measured_explanations(self, model: Model, explainer: Explainer, x: torch.Tensor, target: torch.Tensor,
                              seed: int, measures: Mapping[str, Any],
                              compute: Callable[[], tuple[np.ndarray, dict[str, Any]]]
                              ) -> tuple[np.ndarray, dict[str, Any], bool]:
        """`compute()`'s maps and what it measured of them (plain values), kept together like `explanations`;
        `measures` (how they are measured) joins the key. The flag says they were read from the store."""
        path = self._explanation_path(model, explainer, x, target, seed, measures)
        return kept_array_and_record(path, (len(x), *x.shape[2:]), compute, model.name)

    def kept_counterfactuals(self, model: Model, method: Any, x: torch.Tensor, target: torch.Tensor,
                             against: Mapping[str, Any],
                             compute: Callable[[], tuple[np.ndarray, dict[str, Any]]]
                             ) -> tuple[np.ndarray, dict[str, Any], bool]:
        """A counterfactual method's answers for images `x` and classes `target`, with a record of plain values
        (its time), kept in the stored classifier's entry under `counterfactuals/`; `against` names what else
        they depend on (the generator's store key). The flag says they were read from the store."""
        path = self._kept_path(model, COUNTERFACTUALS,
                               lambda: question_key(method, (x, target), self.seed, self.device, against))
        return kept_array_and_record(path, tuple(x.shape), compute, model.name)

    def _explanation_path(self, model: Model, explainer: Explainer, x: torch.Tensor, target: torch.Tensor,
                          seed: int, extra: Mapping[str, Any] | None = None) -> Path | None:
        return self._kept_path(model, EXPLANATIONS,
                               lambda: explanation_key(explainer, x, target, seed, self.device, extra))

    def _kept_path(self, model: Model, folder: str, key: Callable[[], str | None]) -> Path | None:
        """Where a stored model's answer to the question `key()` is kept; None where nothing is (not a stored
        model, an earlier epoch, a store told not to, a question without a key). The key (a hash of the
        images) is computed only where something can be kept."""
        if model.stored is None or model.epoch is not None or not self.store.keep_explanations:
            return None
        digest = key()
        return None if digest is None else model.stored.path / folder / f"{digest[:32]}.npy"

    def background(self, n: int) -> torch.Tensor:
        """`n` random training inputs (seeded by the run's seed), in their original order."""
        train = self.data.split("train")
        rng = np.random.default_rng(self.seed)
        return train.x[np.sort(rng.choice(len(train), min(int(n), len(train)), replace=False))]

    def indices(self, indices: Sequence[int] | None, n: int, setting: str, split: SplitName = "test") -> np.ndarray:
        """The given indices into `split` (checked), or its first `n`."""
        size = len(self.data.split(split))
        if indices is None:
            if int(n) > size:
                log.warning("%s asks for %d images; the %s split has %d: using all of them", setting.replace(
                    ".indices", ".n_images"), int(n), split, size)
            return np.arange(min(int(n), size))
        idx = np.asarray(list(indices), dtype=int)
        bad = idx[(idx < 0) | (idx >= size)]
        if len(bad):
            raise UserError(f"{setting} {bad.tolist()} out of range: the {split} split has {size} images")
        return idx

    def require_images(self, command: str) -> None:
        if len(self.data.input_shape) != 3:
            raise UserError(f"xai {command} needs images; {self.data.name} has inputs of shape {self.data.input_shape}")


def is_fixed(config: DictConfig) -> bool:
    """A model config without a fitter describes a model that is used as it is (classifier=file)."""
    return config.get("fit") is None


def specs_from(classifiers: Mapping[str, DictConfig]) -> list[ModelSpec]:
    """The model specs of a config's `classifiers` set (name = the key in the set)."""
    return [ModelSpec(str(name), cfg) for name, cfg in classifiers.items()]


def trainer_config(cfg: DictConfig) -> DictConfig:
    """`trainer` with the `callbacks` group inside it, as `Trainer(callbacks=...)` takes them: every fit and
    the model store's key read the one node."""
    callbacks = cfg.get("callbacks")
    if callbacks is None:
        return cfg.trainer
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer["callbacks"] = OmegaConf.to_container(callbacks, resolve=True)  # type: ignore[index]
    return OmegaConf.create(trainer)
