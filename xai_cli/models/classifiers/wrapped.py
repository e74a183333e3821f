"""`classifier=module`: your own torch network, named by its import path, trained and stored like xai's own.

The network returns logits; its class and constructor arguments are config (`model.module`), so they enter
the store key, and `xai consistency` can retrain copies of your architecture as it does of ours. A model
you have already trained is handed to the analyses as it is instead (the Python API takes the module).
"""

from __future__ import annotations

import torch
from torch import nn

from xai_cli.models.classifiers.base import TorchClassifier


class WrappedModule(TorchClassifier):
    """Any `nn.Module` mapping inputs (N, *input_shape) to logits (N, K), with xai's training and storing."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            from xai_cli.errors import UserError

            raise UserError(f"model.module must build a torch.nn.Module, not a {type(module).__name__}")
        self.net = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
