"""Wachter and prototype-guided counterfactuals on models whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xai_cli.counterfactuals.base import Context
from xai_cli.counterfactuals.gradient import Prototype, Wachter


def linear_model() -> nn.Module:
    """Two classes on 4x4 images: logit_1 − logit_0 = w·x − 5, w = 4 on pixel 0 and 1 elsewhere."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1] = torch.ones(16)
        model[1].weight[1, 0] = 4.0
        model[1].bias.copy_(torch.tensor([0.0, -5.0]))
    return model.eval()


@pytest.mark.parametrize("scale", ["log_probability", "probability"])
def test_wachter_finds_the_closed_form_minimal_change_of_a_linear_model(scale: str) -> None:
    model = linear_model()
    x = torch.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 0.5
    x[0, 0, 0, 1:] = 1 / 6  # w·x = 4·0.5 + 3·(1/6) = 2.5: class 0 leads by 2.5
    gap = (model(x)[0, 1] - model(x)[0, 0]).item()
    assert gap == pytest.approx(-2.5)
    # minimal L1 change with pixels in [0, 1]: raise pixel 0 (weight 4) to 1 (+0.5 → +2), then 0.5 more of
    # logit from any weight-1 pixel (+0.5): L1 = 1.0. Any other route costs more.
    closed_form_l1 = 1.0
    method = Wachter(lam=1.0, scale=scale, steps=300, search_rounds=6, lr=0.01)
    cf = method.generate(Context(model, None, None, 2), x, torch.tensor([1]))
    assert model(cf).argmax(1).item() == 1
    delta = (cf - x).flatten()
    l1 = delta.abs().sum().item()
    assert closed_form_l1 <= l1 + 1e-4 and l1 <= 1.15 * closed_form_l1, l1
    assert cf.flatten()[0].item() == pytest.approx(1.0, abs=0.02)  # the cheapest pixel is used to its limit
    assert torch.all(cf >= 0) and torch.all(cf <= 1)


def test_zero_budget_returns_the_input_unchanged() -> None:
    model = linear_model()
    x = torch.zeros(3, 1, 4, 4)
    cf = Wachter(steps=0).generate(Context(model, None, None, 2), x, torch.ones(3, dtype=torch.long))
    torch.testing.assert_close(cf, x)
    assert (model(cf).argmax(1) == 0).all()  # so none reaches the target: the report shows grey tiles


class FlattenCodes:
    """A stand-in β-VAE whose code of an image is its first two pixels: prototypes are checkable by hand."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2].clone()


def test_the_prototype_is_the_mean_of_the_nearest_codes_of_the_target_class() -> None:
    rng = np.random.default_rng(0)
    train_x = torch.from_numpy(rng.random((60, 1, 2, 2))).float()
    train_pred = torch.from_numpy(rng.integers(0, 3, 60))
    ctx = Context(None, FlattenCodes(), train_x, 3)
    ctx.train_pred = train_pred  # what the classifier would say
    method = Prototype(k=4)
    method.prepare(ctx)
    x = torch.from_numpy(rng.random((5, 1, 2, 2))).float()
    target = torch.tensor([0, 1, 2, 1, 0])
    z = FlattenCodes().encode(x)
    got = method.prototypes(ctx, z, target)
    codes = train_x.flatten(1)[:, :2].numpy()
    for i in range(5):
        pool = codes[train_pred.numpy() == target[i].item()]
        nearest = np.argsort(((pool - z[i].numpy()) ** 2).sum(1))[:4]
        np.testing.assert_allclose(got[i].numpy(), pool[nearest].mean(0), rtol=1e-6)
