"""The single LightningModule that trains every torch model: classifiers and generators alike.

The network says what it learns from (`training_loss`) and how it is judged on the validation split
(`validation_metrics`); this module only wires those into Lightning.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import lightning.pytorch as L
import torch
from torch import nn
from torch.optim import Optimizer

from xai_cli.errors import UserError


class TrainingModule(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label: str = "model",
    ) -> None:
        super().__init__()
        self.net, self.label = net, label
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.net.training_loss(x, y)
        if not torch.isfinite(loss):  # what follows would train, and store, nonsense with a success status
            raise UserError(f"{self.label}: the training loss became {float(loss)} at epoch {self.current_epoch + 1}, "
                            f"step {self.global_step + 1}; nothing was stored (a lower learning rate may help)")
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        for name, value in self.net.validation_metrics(x, y).items():
            self.log(name, value, prog_bar=True, on_epoch=True, batch_size=len(y), sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        # one-cycle style schedules need the run's length, which is known only once the trainer exists
        if "total_steps" in inspect.signature(self.scheduler_factory).parameters:
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
