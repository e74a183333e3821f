"""How real do generated images look? Kernel Inception Distance without Inception (nothing to download).

KID (Bińkowski et al. 2018) is torchmetrics' `KernelInceptionDistance`: an unbiased polynomial-kernel MMD²
between feature sets, averaged over random subsets. Instead of Inception-v3 features (a download, and made
for photographs) the features are the penultimate activations of the classifier trained here: the input of
its last linear layer. Scores are therefore comparable only between runs with the same classifier; the
report states a real-vs-real figure beside them as the floor.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.kid import KernelInceptionDistance

# torchmetrics warns that it keeps every feature vector: a few thousand small vectors here
warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")


class PenultimateFeatures(nn.Module):
    """The input of a classifier's last `nn.Linear`, as (N, F)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"{type(classifier).__name__} has no linear layer to take features before")
        self._classifier = [classifier]  # not a submodule: torchmetrics must not move or own it
        self._last = linears[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = self._last.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
        try:
            self._classifier[0](x)
        finally:
            handle.remove()
        return captured[0].flatten(1).double()  # double: the MMD sums many large kernel values


class ScaledFeatures(nn.Module):
    """Features divided by a fixed number. KID's cubic kernel (x.y/d + 1)^3 grows with the features' size, and
    a classifier's penultimate activations grow with its confidence (on MNIST-corrupted, real vs generated: KID
    442 for MSP 0.99-1, 1.3 for MSP 0.6-0.8): dividing a band's features by its real images' mean norm puts
    every band on one scale."""

    def __init__(self, features: nn.Module, scale: float) -> None:
        super().__init__()
        self.features, self.scale = features, float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) / self.scale


@torch.no_grad()
def mean_norm(features: nn.Module, images: torch.Tensor, batch_size: int = 500) -> float:
    return float(torch.cat([features(images[i : i + batch_size]).norm(dim=1)
                            for i in range(0, len(images), batch_size)]).mean())


@torch.no_grad()
def kernel_distance(features: nn.Module, real: torch.Tensor, fake: torch.Tensor, seed: int,
                    subsets: int = 50, batch_size: int = 500) -> tuple[float, float]:
    """KID mean and standard deviation over `subsets` random subsets of each set."""
    # subsets of half the smaller set: the spread over subsets then says how much the score itself varies
    metric = KernelInceptionDistance(feature=features, subsets=subsets, subset_size=max(2, min(len(real), len(fake)) // 2))
    for images, is_real in ((real, True), (fake, False)):
        for start in range(0, len(images), batch_size):
            metric.update(images[start : start + batch_size], real=is_real)
    torch.manual_seed(seed)  # the subsets come from torch's global generator
    mean, std = metric.compute()
    return float(mean), float(std)
