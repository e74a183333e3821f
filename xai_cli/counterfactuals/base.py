"""What every counterfactual method provides, and what it is given."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from xai_cli.explainers.base import NotApplicable


@dataclass
class Context:
    """Everything a method may use besides the images: the classifier, the β-VAE, the training set."""

    model: Any                  # a classifier (predict_proba); a torch module for the gradient methods
    vae: Any                    # xai_cli.models.generators.beta_vae.BetaVAE
    train_x: torch.Tensor
    num_classes: int
    seed: int = 0
    # (model config, fit config) -> StoredModel: trains what a method learns into the model store, keyed
    # together with the classifier's and the VAE's configs
    store: Callable[[Any, Any], Any] | None = None

    @cached_property
    def train_pred(self) -> torch.Tensor:
        """The classifier's predictions on train_x, computed once and only if a method asks (a full pass
        over the training set)."""
        return torch.from_numpy(self.model.predict_proba(self.train_x).argmax(1))


class CounterfactualMethod(ABC):
    needs_gradients: ClassVar[bool] = True

    def check(self, model: Any) -> None:
        if self.needs_gradients and not isinstance(model, nn.Module):
            raise NotApplicable("needs the classifier's gradients; this model has none (use latent_rl)")

    def prepare(self, ctx: Context) -> dict[str, Any]:
        """One-off work before generating (prototypes, training an actor); returns what to report."""
        return {}

    @abstractmethod
    def generate(self, ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Counterfactuals (N, C, H, W) for inputs x (N, C, H, W) and target classes (N,); the caller checks
        which reach their target."""
