"""The explainer interface and what every method shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xai_cli.models.classifiers.base import Classifier
from xai_cli.utils.progress import snake_case, track


class NotApplicable(Exception):
    """This method cannot explain this model (e.g. gradients of an SVM); the message says why."""


class Explainer(ABC):
    needs_gradients: ClassVar[bool] = True
    needs_hooks: ClassVar[bool] = False  # hooks into the network's layers (DeepLIFT's rules, Grad-CAM's layer)
    uses_background: ClassVar[bool] = False  # wants training images as reference (set by the runner)

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = int(batch_size)
        self.background: torch.Tensor | None = None

    def set_background(self, images: torch.Tensor) -> None:
        self.background = images

    def check(self, model: Classifier) -> None:
        """Raise NotApplicable if the method cannot explain `model`."""
        if self.needs_gradients and not isinstance(model, nn.Module):
            raise NotApplicable("needs gradients; this model is not differentiable (use a model-agnostic method)")
        if self.needs_hooks:
            compiled = compiled_kind(model)  # type: ignore[arg-type]
            if compiled:
                raise NotApplicable(f"hooks into the network's layers (one module per activation and convolution), "
                                    f"which a {compiled} network does not have: load its state dict into its class "
                                    "instead")

    def explain(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Attributions (N, H, W) for inputs (N, C, H, W) and target classes (N,), in batches."""
        self.check(model)
        use_fast_layout(model)
        starts = range(0, len(x), self.batch_size)
        if len(starts) > 1:
            starts = track(starts, f"{self.name}: batches of {self.batch_size}", total=len(starts))  # type: ignore[assignment]
        maps = [self._explain_batch(model, x[i : i + self.batch_size], target[i : i + self.batch_size])
                for i in starts]
        return torch.cat(maps).detach().cpu()

    @property
    def name(self) -> str:
        """The method's name as its config spells it ("kernel_shap"), for progress and messages."""
        return snake_case(type(self).__name__)

    def each_image(self, x: torch.Tensor, target: torch.Tensor) -> Iterator[tuple[np.ndarray, int]]:
        """(H, W, C) image and target class, one at a time with progress: for the methods that explain an
        image at a time (seconds each on a CPU), where a batch's bar alone would not move."""
        pairs = zip(as_numpy_images(x), target.tolist())
        return track(pairs, f"{self.name}: images", total=len(x)) if len(x) > 1 else iter(pairs)

    @abstractmethod
    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ...


def compiled_kind(model: nn.Module) -> str | None:
    """"TorchScript" or "torch.export" if the network (or a part of it) is a compiled graph, whose layers
    cannot be hooked one by one; None for a plain module."""
    for m in model.modules():
        if isinstance(m, torch.jit.ScriptModule):
            return "TorchScript"
        if isinstance(m, torch.fx.GraphModule):
            return "torch.export"
    return None


def device_of(model: Classifier) -> torch.device:
    if isinstance(model, nn.Module):
        return next(model.parameters()).device
    return torch.device("cpu")


def use_fast_layout(model: Classifier) -> None:
    """Convolution weights in channels-last (NHWC) layout, in place; inputs follow on the first convolution.

    oneDNN's native layout on CPUs: the MNIST cnn's forward pass runs ~1.5× faster (0.18 → 0.12 s for 1,000
    images on 2 cores), which is most of the time LIME and KernelSHAP take. Same function, same results up
    to float rounding; models without 4-d weights are untouched."""
    if isinstance(model, nn.Module):
        model.to(memory_format=torch.channels_last)


def probability_function(model: Classifier, chunk: int = 64) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch function x -> class probabilities, for any classifier (perturbation methods need only this).

    Torch models see the input in chunks: a small CNN on a CPU runs ~40 % faster on batches of 64 than on
    the 1,000 perturbed images LIME or KernelSHAP hand over at once (the activations stay in cache).
    """
    if isinstance(model, nn.Module):
        return lambda x: torch.cat([F.softmax(model(x[i : i + chunk]), dim=-1) for i in range(0, len(x), chunk)])
    return lambda x: torch.from_numpy(model.predict_proba(x.detach().cpu())).to(x.device)


def to_map(attributions: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): channels summed, the contribution of each pixel location."""
    return attributions.sum(dim=1) if attributions.ndim == 4 else attributions


def as_numpy_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) tensor -> (N, H, W, C) float64 array, the layout lime and skimage expect."""
    return x.detach().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)


def settings_of(obj: Any) -> dict[str, Any]:
    """Public scalar settings of an explainer, for the report."""
    return {k: v for k, v in vars(obj).items()
            if not k.startswith("_") and k != "background" and isinstance(v, (int, float, str, bool, type(None)))}
