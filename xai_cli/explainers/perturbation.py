"""Model-agnostic methods: they only call the model for probabilities, so they also explain the SVM."""

from __future__ import annotations

from typing import Callable

import numpy as np
import shap
import torch
from captum.attr import Occlusion
from lime import lime_image
from sklearn.metrics import pairwise_distances

from xai_cli.explainers.base import Explainer, as_numpy_images, device_of, probability_function, to_map
from xai_cli.explainers.segmentation import superpixels
from xai_cli.models.classifiers.base import Classifier
from xai_cli.utils.threads import one_blas_thread


class OcclusionExplainer(Explainer):
    """Drop in target probability when a sliding patch is set to the baseline (captum's Occlusion).

    `window` and `stride` are in pixels; left unset, they scale with the image (a seventh of its side, and
    half that): 4 and 2 on 28 px, 9 and 4 on 64 px, so that the patch covers the same share of any image
    and the number of model calls stays near 170 per image instead of growing with the square of its side.
    """

    needs_gradients = False

    def __init__(self, window: int | None = None, stride: int | None = None, baseline: float = 0.0,
                 perturbations_per_eval: int = 64, **kwargs) -> None:
        super().__init__(**kwargs)
        self.window = None if window is None else int(window)
        self.stride = None if stride is None else int(stride)
        self.baseline, self.perturbations_per_eval = float(baseline), int(perturbations_per_eval)

    def patch(self, height: int, width: int) -> tuple[int, int]:
        """(window, stride) in pixels for an image of this size."""
        window = self.window if self.window is not None else max(1, round(min(height, width) / 7))
        stride = self.stride if self.stride is not None else max(1, window // 2)
        return window, stride

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.to(device_of(model))
        c = x.shape[1]
        window, stride = self.patch(*x.shape[-2:])
        attr = Occlusion(probability_function(model)).attribute(
            x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
            baselines=self.baseline, target=target.to(x.device), perturbations_per_eval=self.perturbations_per_eval)
        return to_map(attr)


class SuperpixelExplainer(Explainer):
    """Methods that switch SLIC superpixels on and off, `n_samples` times per image, from a seed."""

    needs_gradients = False

    def __init__(self, n_samples: int = 1000, n_segments: int = 64, compactness: float = 0.2, seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.n_segments, self.compactness = int(n_samples), int(n_segments), float(compactness)
        self.seed = int(seed)

    def segments_of(self, image: np.ndarray) -> np.ndarray:
        return superpixels(image, self.n_segments, self.compactness)


class KernelShapExplainer(SuperpixelExplainer):
    """KernelSHAP over SLIC superpixels, removed superpixels set to the baseline.

    The algorithm of captum's KernelShap (coalition sizes drawn from the Shapley kernel, uniform subsets,
    the empty and full coalitions pinned with a large weight, a least-squares fit), with the 1,000
    coalitions and their images built in one vectorised step: captum builds them one at a time in Python,
    which costs about as much as the model calls. Exact Shapley values on additive models (tested).
    """

    def __init__(self, baseline: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.baseline = float(baseline)

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = []
        for image, t in self.each_image(x, target):
            segments = self.segments_of(image)
            values = kernel_shap_values(coalition_predictor(model, image, segments, self.baseline),
                                        segments, t, self.n_samples, self.seed)
            # spread each superpixel's value over its pixels, so that the map sums to the Shapley values
            sizes = np.bincount(segments.ravel())
            maps.append(torch.from_numpy(values[segments] / sizes[segments]).float())
        return torch.stack(maps)


def coalition_predictor(model: Classifier, image: np.ndarray, segments: np.ndarray,
                        fill: float) -> Callable[[np.ndarray], np.ndarray]:
    """coalitions (n, superpixels) 0/1 -> the model's probabilities on `image` (H, W, C) with the superpixels
    that are 0 set to `fill`. A model that can score such images without building them does (the RBF SVM,
    `SklearnClassifier.masked_predictor`: 1.9x faster on MNIST); any other sees the images."""
    masked = getattr(model, "masked_predictor", None)
    fast = masked(image.transpose(2, 0, 1), fill, segments) if masked is not None else None
    return fast if fast is not None else image_predictor(probability_function(model), image, segments, fill,
                                                         device_of(model))


def image_predictor(f: Callable[[torch.Tensor], torch.Tensor], image: np.ndarray, segments: np.ndarray, fill: float,
                    device: torch.device | str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """The coalition predictor of a function of (N, C, H, W) images: the images built in one vectorised step."""
    def predict(coalitions: np.ndarray) -> np.ndarray:
        keep = coalitions.astype(bool)[:, segments][..., None]  # (n, H, W, 1): superpixel kept or set to fill
        batch = torch.from_numpy(np.where(keep, image[None], fill)).permute(0, 3, 1, 2).float().to(device)
        with torch.no_grad():
            return f(batch).cpu().numpy()
    return predict


def kernel_shap_values(predict: Callable[[np.ndarray], np.ndarray], segments: np.ndarray, label: int,
                       n_samples: int, seed: int) -> np.ndarray:
    """KernelSHAP value of each superpixel for `label` (Lundberg & Lee, 2017); `predict` maps coalitions
    (n, superpixels) 0/1 to probabilities (`coalition_predictor`)."""
    m = int(segments.max()) + 1
    if m == 1:  # one segment: its Shapley value is the whole change from the baseline
        out = np.asarray(predict(np.array([[1.0], [0.0]])))[:, label].astype(np.float64)
        return np.array([out[0] - out[1]])
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, m)
    kernel = (m - 1) / (sizes * (m - sizes))
    n_random = max(n_samples - 2, 0)
    k = rng.choice(sizes, size=n_random, p=kernel / kernel.sum())
    ranks = np.argsort(np.argsort(rng.random((n_random, m)), axis=1), axis=1)
    coalitions = np.vstack([np.ones(m), np.zeros(m), (ranks < k[:, None]).astype(float)])
    weights = np.r_[1e6, 1e6, np.ones(n_random)]  # sampled from the kernel: uniform weights; ends pinned
    # the kernel favours coalitions of size 1 and m-1, of which there are only m each: ask the model once each
    distinct, inverse = np.unique(coalitions, axis=0, return_inverse=True)
    outputs = np.asarray(predict(distinct))[:, label].astype(np.float64)[inverse.ravel()]
    design = np.c_[np.ones(len(coalitions)), coalitions] * np.sqrt(weights)[:, None]
    with one_blas_thread():
        coef = np.linalg.lstsq(design, outputs * np.sqrt(weights), rcond=None)[0]
    return coef[1:]


class LimeExplainer(SuperpixelExplainer):
    """LIME over SLIC superpixels, hidden superpixels set to `hide_color`, seeded.

    lime_image's own `explain_instance` builds its perturbed images in a Python loop (and always draws a
    tqdm bar). This draws the same samples from lime's own seeded generator, builds the images in one
    vectorised step, and hands them to lime's distance kernel and weighted regression
    (`LimeBase.explain_instance_with_data`): the same explanation as `explain_instance` (tested).
    """

    def __init__(self, hide_color: float = 0.0, kernel_width: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hide_color, self.kernel_width = float(hide_color), float(kernel_width)

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = []
        for image, t in self.each_image(x, target):
            segments = self.segments_of(image)
            weights = lime_superpixel_weights(coalition_predictor(model, image, segments, self.hide_color),
                                              segments, t, self.n_samples, self.kernel_width, self.seed)
            maps.append(torch.from_numpy(weights[segments]).float())
        return torch.stack(maps)


def lime_superpixel_weights(predict: Callable[[np.ndarray], np.ndarray], segments: np.ndarray, label: int,
                            n_samples: int, kernel_width: float, seed: int) -> np.ndarray:
    """LIME's weight per superpixel for `label`, exactly as lime_image computes it, with vectorised sampling;
    `predict` maps samples (n, superpixels) 0/1 to probabilities (`coalition_predictor`)."""
    explainer = lime_image.LimeImageExplainer(kernel_width=kernel_width, random_state=seed)
    n_features = int(np.unique(segments).shape[0])
    # the same draws, in the same order, as lime_image: explain_instance first spends one on a segmentation
    # seed (unused with our segments), then data_labels draws the on/off pattern of every sample
    explainer.random_state.randint(0, high=1000)
    data = explainer.random_state.randint(0, 2, n_samples * n_features).reshape((n_samples, n_features))
    data[0, :] = 1
    labels = np.asarray(predict(data)).astype(np.float64)
    distances = pairwise_distances(data, data[0].reshape(1, -1), metric="cosine").ravel()
    with one_blas_thread():
        _, local_exp, _, _ = explainer.base.explain_instance_with_data(
            data, labels, distances, label, n_features, feature_selection=explainer.feature_selection)
    weights = np.zeros(n_features)
    for segment, weight in local_exp:
        weights[segment] = weight
    return weights


class PartitionShapExplainer(Explainer):
    """shap's Partition explainer: Owen values over a hierarchy of pixel groups, masked to a constant."""

    needs_gradients = False

    def __init__(self, max_evals: int = 500, mask_value: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_evals, self.mask_value = int(max_evals), float(mask_value)

    def _explain_batch(self, model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = probability_function(model)
        images = as_numpy_images(x)  # (N, H, W, C)

        def predict(batch: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(batch).permute(0, 3, 1, 2).float().to(device_of(model))
            with torch.no_grad():
                return f(t).cpu().numpy()

        masker = shap.maskers.Image(np.full(images.shape[1:], self.mask_value), images.shape[1:])
        explainer = shap.PartitionExplainer(predict, masker)
        maps = []
        for image, t in self.each_image(x, target):
            values = explainer(image[None], max_evals=self.max_evals, outputs=[t], silent=True).values
            maps.append(torch.from_numpy(np.asarray(values)[0, ..., 0].sum(-1)).float())  # (H, W, C, 1) -> (H, W)
        return torch.stack(maps)
