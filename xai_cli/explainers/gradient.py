"""Gradient-based methods, all from captum, on the model's logits (softmax saturation would hide them)."""

from __future__ import annotations

import warnings

import numpy as np
import shap
import torch
from captum.attr import DeepLift, GradientShap, IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from torch import nn

from xai_cli.explainers.base import Explainer, NotApplicable, device_of, to_map
from xai_cli.models.classifiers.base import Classifier

# captum announces, on every call, that it hooks the activation modules; our models are built for that
warnings.filterwarnings("ignore", message="Setting forward, backward hooks and attributes on non-linear")
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


def _baseline(x: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full_like(x, float(value))


class SaliencyExplainer(Explainer):
    """|d logit_target / d x| (Simonyan et al.): unsigned, so every value reads as evidence."""

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return to_map(Saliency(model).attribute(x.to(device_of(model)), target=target.to(device_of(model)), abs=True))


class IntegratedGradientsExplainer(Explainer):
    """Integrated gradients from a constant baseline (black by default: digits are white on black)."""

    def __init__(self, n_steps: int = 50, internal_batch_size: int = 128, baseline: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_steps, self.internal_batch_size, self.baseline = int(n_steps), int(internal_batch_size), baseline

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.to(device_of(model))
        attr = IntegratedGradients(model).attribute(
            x, baselines=_baseline(x, self.baseline), target=target.to(x.device), n_steps=self.n_steps,
            internal_batch_size=self.internal_batch_size)
        return to_map(attr)


class DeepLiftExplainer(Explainer):
    """DeepLIFT (rescale rule) against a constant baseline."""

    needs_hooks = True

    def __init__(self, baseline: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.baseline = baseline

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.to(device_of(model))
        return to_map(DeepLift(model).attribute(x, baselines=_baseline(x, self.baseline), target=target.to(x.device)))


class GradientShapExplainer(Explainer):
    """GradientSHAP: expected gradients over random training images as baselines."""

    uses_background = True

    def __init__(self, n_samples: int = 20, stdevs: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.stdevs = int(n_samples), float(stdevs)

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert self.background is not None, "gradient_shap needs background images"
        x = x.to(device_of(model))
        attr = GradientShap(model).attribute(x, baselines=self.background.to(x.device), target=target.to(x.device),
                                             n_samples=self.n_samples, stdevs=self.stdevs)
        return to_map(attr)


class _OneOutput(nn.Module):
    """The model's logit for one class, as a one-output model."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.index : self.index + 1]


class DeepShapExplainer(Explainer):
    """DeepSHAP as shap's DeepExplainer computes it, for the explained class only.

    shap's explainer propagates every output of the model (10 for digits) for every image. Images are
    grouped by explained class here and shap is handed a one-output view of the model for each group, so
    shap's own rules run once per image instead of ten times: the same values, several times faster.
    captum's DeepLiftShap is not used: with image baselines its max-pool rule loses completeness (on a
    digits cnn its attributions miss f(x) - E[f(background)] by ~0.4 logits); shap's sum to it exactly.
    """

    uses_background = True
    needs_hooks = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cache: dict[tuple[int, int, int], shap.DeepExplainer] = {}

    def set_background(self, images: torch.Tensor) -> None:
        super().set_background(images)
        self._cache = {}

    def _explainer_for(self, model: nn.Module, index: int) -> shap.DeepExplainer:
        assert self.background is not None, "deep_shap needs background images"
        key = (id(model), id(self.background), index)
        if key not in self._cache:
            model.eval()
            self._cache[key] = shap.DeepExplainer(_OneOutput(model, index), self.background.to(device_of(model)))
        return self._cache[key]

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape)
        for index in target.unique().tolist():
            rows = (target == index).nonzero().flatten()
            values = self._explainer_for(model, index).shap_values(x[rows].to(device_of(model)), check_additivity=False)
            out[rows] = torch.from_numpy(np.asarray(values).reshape(x[rows].shape)).float()
        return to_map(out)


class GradCamExplainer(Explainer):
    """Grad-CAM on a convolutional layer, upsampled to the input size (bilinear).

    The layer is `target_layer` (a module name, e.g. `layer4` or `features.7`; a suffix of the full name
    suffices), or else the last convolution the forward pass runs: in execution order, not registration order,
    which differ for networks whose auxiliary heads are registered last (torchvision's GoogLeNet, Inception).
    """

    needs_hooks = True

    def __init__(self, target_layer: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_layer = target_layer or None

    def check(self, model: Classifier) -> None:
        super().check(model)
        if self.target_layer is not None:
            named_layer(model, self.target_layer)  # type: ignore[arg-type]
        elif not _convolutions(model):  # type: ignore[arg-type]
            raise NotApplicable("needs a convolutional layer; this model has none")

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.to(device_of(model))
        layer = (named_layer(model, self.target_layer) if self.target_layer is not None  # type: ignore[arg-type]
                 else last_conv(model, x[:1]))  # type: ignore[arg-type]
        cam = LayerGradCam(model, layer).attribute(x, target=target.to(x.device), relu_attributions=True)
        return to_map(LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear"))


def _convolutions(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) or type(m).__name__ == "GaborConv2d"]


def last_conv(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module | None:
    """The last convolution of `model`: the last one run on `example` if given, else the last registered."""
    convs = _convolutions(model)
    if example is None or len(convs) < 2:
        return convs[-1] if convs else None
    ran: list[nn.Module] = []
    handles = [c.register_forward_hook(lambda module, *_: ran.append(module)) for c in convs]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return ran[-1] if ran else convs[-1]


def named_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called `name`, or the one whose full name ends in `.name` (a wrapper adds a prefix)."""
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    matches = [m for full, m in modules.items() if full.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    convolutions = set(map(id, _convolutions(model)))
    convs = [full for full, m in modules.items() if id(m) in convolutions][-3:]
    reason = "names several layers" if matches else "is no layer of this model"
    raise NotApplicable(f"target_layer={name} {reason}; its last convolutions: {', '.join(convs) or 'none'}")
