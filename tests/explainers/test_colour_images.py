"""Explainers on colour images beyond 28 px: a torchvision resnet18 of one's own (random init, trained briefly
here, saved as a state dict), Grad-CAM's choice of layer, and occlusion's patch scaled with the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LayerAttribution, LayerGradCam

import xai_cli as xai
from tests.conftest import DIGIT_NAMES, write_image_folder
from xai_cli.explainers.base import NotApplicable
from xai_cli.explainers.gradient import GradCamExplainer, last_conv
from xai_cli.explainers.perturbation import OcclusionExplainer

RESNET = {"_target_": "torchvision.models.resnet18", "num_classes": 3}


@pytest.fixture(scope="module")
def coloured64(tmp_path_factory: pytest.TempPathFactory):
    root = write_image_folder(tmp_path_factory.mktemp("coloured") / "digits", classes=3, per_class=40, size=64)
    return xai.datasets.load("image_folder", root=str(root), channels=3, image_size=64)


@pytest.fixture(scope="module")
def resnet_file(coloured64, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """resnet18 from random weights, 25 Adam steps on the coloured digits, saved as its state dict."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3)
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    train = coloured64.split("train")
    net.train()
    for _ in range(25):
        idx = torch.randint(len(train), (32,))
        loss = F.cross_entropy(net(train.x[idx]), train.y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    path = tmp_path_factory.mktemp("resnet") / "resnet18.pt"
    torch.save(net.state_dict(), path)
    return path, net.eval()


def test_a_torchvision_resnet18_from_a_state_dict_is_explained_in_colour(coloured64, resnet_file,
                                                                         monkeypatch) -> None:
    import xai_cli.analysis.explain as explain_module

    drawn: list[tuple[torch.Tensor, list[str]]] = []
    grid = explain_module.attribution_grid
    monkeypatch.setattr(explain_module, "attribution_grid",
                        lambda images, maps, titles, *a, **k: drawn.append((images, titles)) or grid(images, maps,
                                                                                                     titles, *a, **k))
    path, net = resnet_file
    model = xai.load_model(path, network=RESNET, channels=3, image_size=64,
                           class_names=sorted(DIGIT_NAMES[:3]))
    test = coloured64.split("test")
    with torch.no_grad():
        assert torch.equal(model(test.x), net(test.x))  # the same network, loaded
    assert (model.predict_proba(test.x).argmax(1) == test.y.numpy()).mean() > 0.8  # trained, if briefly
    explainers = {"grad_cam": GradCamExplainer(), "grad_cam_layer3": GradCamExplainer(target_layer="layer3"),
                  "occlusion": OcclusionExplainer(), "saliency": "saliency", "kernel_shap": "kernel_shap"}
    result = xai.explain({"resnet18": model}, coloured64, explainers=explainers, n_images=3,
                         stability={"n_images": 1, "n_samples": 2}, randomization={"n_images": 2})
    maps = result.attributions
    for name in explainers:
        assert maps[f"resnet18/{name}"].shape == (3, 64, 64), name
        assert np.ptp(maps[f"resnet18/{name}"][0]) > 0, name  # a map, not a constant
    # the figure shows the colour images, captioned with class names
    (images, titles), = drawn
    assert images.shape[1] == 3 and all(" y=" in t for t in titles)
    assert {t.split(" y=")[1].split()[0] for t in titles} <= set(DIGIT_NAMES[:3])
    # Grad-CAM on layer3 is captum's LayerGradCam on the network's own layer3, upsampled
    x = test.x[:3]
    target = torch.from_numpy(model.predict_proba(x).argmax(1))
    cam = LayerGradCam(net, net.layer3).attribute(x, target=target, relu_attributions=True)
    expected = LayerAttribution.interpolate(cam, (64, 64), interpolate_mode="bilinear")[:, 0]
    assert np.allclose(maps["resnet18/grad_cam_layer3"], expected.detach().numpy(), atol=1e-5)
    # and without a layer named, the last convolution the forward pass runs: layer4's last
    assert last_conv(model, x[:1]) is net_layer(model, "layer4.1.conv2")


def net_layer(model: torch.nn.Module, suffix: str) -> torch.nn.Module:
    (layer,) = [m for name, m in model.named_modules() if name.endswith(suffix)]
    return layer


class _AuxLast(torch.nn.Module):
    """A main branch and an auxiliary head registered after it but never run (GoogLeNet's layout in eval)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
        self.aux = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def test_grad_cam_takes_the_last_convolution_run_or_the_layer_named() -> None:
    model = _AuxLast().eval()
    x = torch.rand(2, 3, 16, 16)
    assert last_conv(model) is model.aux  # registration order would pick the unused head
    assert last_conv(model, x[:1]) is model.main[2]
    maps = GradCamExplainer().explain(model, x, torch.tensor([0, 1]))
    assert maps.shape == (2, 16, 16) and maps.abs().sum() > 0
    assert torch.allclose(maps, GradCamExplainer(target_layer="main.2").explain(model, x, torch.tensor([0, 1])))
    with pytest.raises(NotApplicable, match=r"target_layer=layer4 is no layer of this model; its last "
                                            r"convolutions: main.0, main.2, aux"):
        GradCamExplainer(target_layer="layer4").check(model)


@pytest.mark.parametrize("side, patch", [(28, (4, 2)), (32, (5, 2)), (64, (9, 4)), (224, (32, 16))])
def test_occlusion_scales_its_patch_with_the_image(side: int, patch: tuple[int, int]) -> None:
    assert OcclusionExplainer().patch(side, side) == patch
    assert OcclusionExplainer(window=6).patch(side, side) == (6, 3)  # pixels, when given
    assert OcclusionExplainer(window=6, stride=6).patch(side, side) == (6, 6)
