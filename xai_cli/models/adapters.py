"""A user's own model, whatever it is, behind the one classifier interface every analysis uses.

Three kinds are accepted, and what they allow follows from what they are:
- a `torch.nn.Module` returning logits (or probabilities, `outputs="probabilities"`): differentiable, so
  every explainer applies;
- a fitted scikit-learn estimator with `predict_proba`: sees flattened inputs; model-agnostic methods only;
- any callable mapping an array (N, *input_shape) to class probabilities (N, K): model-agnostic only.
Each is checked once on real inputs before an analysis starts, so a mismatch is one line, not a traceback
half-way through a run.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from xai_cli.errors import UserError, first_line
from xai_cli.models.classifiers.base import Classifier, TorchClassifier

Outputs = Literal["logits", "probabilities"]


class _NotStorable:
    """Models handed over by a user are theirs: analyses use them, the store never saves or retrains them."""

    def save(self, path: Path) -> None:
        raise TypeError(f"{type(self).__name__} wraps a user's model; xai does not store it")

    def load(self, path: Path) -> None:
        raise TypeError(f"{type(self).__name__} wraps a user's model; xai does not load it")


class TorchModuleClassifier(_NotStorable, TorchClassifier):
    """A user's `nn.Module`; its forward is the module's, as logits (softmax applied if it gives probabilities)."""

    def __init__(self, module: nn.Module, outputs: Outputs = "logits") -> None:
        super().__init__()
        self.module = module
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        # log-probabilities are logits up to a constant per row: softmax gives back the same probabilities
        return torch.log(out.clamp_min(1e-12)) if self.outputs == "probabilities" else out

    def random_copy(self, seed: int) -> nn.Module | None:
        """The same architecture with fresh weights (for the randomisation check): every submodule that can
        reset its parameters does; weights no module can reset (a TorchScript network's) are shuffled, which
        keeps their scale and destroys what they learned. None for a module without weights."""
        clone = copy.deepcopy(self)
        torch.manual_seed(seed)
        reset: set[int] = set()
        for m in clone.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
                reset.update(id(p) for p in m.parameters(recurse=False))
        rest = [p for p in clone.parameters() if id(p) not in reset]
        with torch.no_grad():
            for p in rest:
                p.copy_(p.flatten()[torch.randperm(p.numel())].view_as(p))
        return clone.eval() if reset or rest else None


class EstimatorClassifier(_NotStorable):
    """A fitted scikit-learn estimator (anything with `predict_proba`) on flattened inputs."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return np.asarray(self.estimator.predict_proba(a.reshape(len(a), -1)), dtype=np.float32)

    def num_parameters(self) -> int:
        # what the fitted estimator learned: its fitted array attributes (coef_, support_vectors_, ...)
        return int(sum(np.asarray(v).size for k, v in vars(self.estimator).items()
                       if k.endswith("_") and not k.startswith("_") and isinstance(v, np.ndarray)
                       and np.issubdtype(v.dtype, np.number)))


class CallableClassifier(_NotStorable):
    """Any function from an array (N, *input_shape) to class probabilities (N, K)."""

    def __init__(self, fn: Callable[[np.ndarray], Any]) -> None:
        self.fn = fn

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        out = self.fn(a)
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        return out.astype(np.float32)

    def num_parameters(self) -> int:
        return 0


def as_classifier(obj: Any, outputs: Outputs = "logits") -> Classifier:
    """Wrap a user's model (see the module docstring); xai's own classifiers pass through unchanged."""
    from xai_cli.models.files import FileModel  # here: files builds on this module's wrappers

    if isinstance(obj, (TorchClassifier, TorchModuleClassifier, EstimatorClassifier, CallableClassifier, FileModel)):
        return obj
    if hasattr(obj, "pipeline") and hasattr(obj, "predict_proba") and hasattr(obj, "num_parameters"):
        return obj  # xai's SklearnClassifier
    if isinstance(obj, nn.Module):
        return TorchModuleClassifier(obj, outputs).eval()
    if hasattr(obj, "predict_proba") and hasattr(obj, "fit"):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(obj)
        except NotFittedError:
            raise UserError(f"{type(obj).__name__} is not fitted: fit it first, or ask xai to train a model by "
                            "name (e.g. 'svm_rbf')") from None
        return EstimatorClassifier(obj)
    if callable(obj):
        return CallableClassifier(obj)
    raise UserError(f"cannot use a {type(obj).__name__} as a model: give a torch.nn.Module, a fitted scikit-learn "
                    "estimator with predict_proba, a callable returning class probabilities, or a model name")


def check_contract(name: str, model: Classifier, x: torch.Tensor, num_classes: int,
                   class_names: Sequence[str] | None = None) -> None:
    """What a model declares (a file model's contract) must be what the data has; then ask it about a few
    real inputs: it must give (N, num_classes) probabilities that sum to 1."""
    label = f"model {name!r}"
    file = getattr(model, "path", None)
    if isinstance(file, Path):  # a model from a file is named by its file: that is what the user chose
        label = file.name if name in ("file", "classifier", "model") else f"{name} ({file.name})"
    declared = getattr(model, "contract", None)
    if declared is not None:
        declared.check(label, x.shape[1:], num_classes, class_names)
    try:
        probs = np.asarray(model.predict_proba(x))
    except Exception as exc:
        first = first_line(exc)
        undeclared = declared is not None and declared.image_size is None
        hint = "; declare what it takes (channels, image_size) for a clear check" if undeclared else ""
        raise UserError(f"{label} fails on inputs of shape {tuple(x.shape[1:])}: "
                        f"{type(exc).__name__}: {first}{hint}") from exc
    if probs.ndim != 2 or len(probs) != len(x):
        raise UserError(f"{label} returns shape {probs.shape} for {len(x)} inputs; expected ({len(x)}, "
                        f"{num_classes})")
    if probs.shape[1] != num_classes:
        raise UserError(f"{label} outputs {probs.shape[1]} classes, dataset has {num_classes}")
    if not np.isfinite(probs).all() or not np.allclose(probs.sum(1), 1.0, atol=1e-3) or probs.min() < -1e-6:
        raise UserError(f"{label} does not return probabilities (rows must be ≥ 0 and sum to 1); a torch "
                        "module should return logits")


def fingerprint(model: Classifier) -> str | None:
    """A content identity for a user's model, so that what is learned against it (a counterfactual actor) can
    be stored and found again: the sha256 of a torch module's weights, or of a fitted estimator's pickled bytes
    (written, never loaded: nothing runs). None for a plain callable, which has no content to hash."""
    identity = getattr(model, "identity", None)
    if isinstance(identity, str):  # a file model: the file's sha256 with what changes its outputs
        return identity
    digest = hashlib.sha256()
    if isinstance(model, TorchModuleClassifier):
        digest.update(f"{type(model.module).__module__}.{type(model.module).__qualname__}:{model.outputs}".encode())
        for name, tensor in sorted(model.module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        return digest.hexdigest()
    if isinstance(model, EstimatorClassifier):
        digest.update(pickle.dumps(model.estimator, protocol=4))
        return digest.hexdigest()
    return None
