"""A model of your own, trained outside xai and saved the ways people save models; README "Your own model".

    python scripts/own_model.py outputs/own_model

writes, into the folder given: net.pt (TorchScript), net.pt2 (torch.export), net_weights.pt (a state dict
of `Net`, importable as own_model.Net with PYTHONPATH=scripts), net.onnx, and logreg.skops (a scikit-learn
logistic regression saved with skops), all trained on xai's embedded digits set (28x28 grey, 10 classes).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

import xai_cli as xai


class Net(nn.Module):
    """A small convolutional net returning logits: one activation module per use, so every method applies."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, stride=2), nn.ReLU(), nn.Conv2d(width, width, 3),
                                      nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(width * 11 * 11, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = xai.datasets.load("digits")
    train, test = data.split("train"), data.split("test")
    torch.manual_seed(0)
    net = Net()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(5):
        order = torch.randperm(len(train.x))
        for i in range(0, len(order), 64):
            batch = order[i : i + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(train.x[batch]), train.y[batch]).backward()
            optimiser.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(test.x).argmax(1) == test.y).float().mean().item()
    example = train.x[:2]
    torch.save(net.state_dict(), folder / "net_weights.pt")
    torch.export.save(torch.export.export(net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("n", min=1)}}),
                      folder / "net.pt2")
    with warnings.catch_warnings():  # torch deprecates TorchScript and its ONNX exporter; both still work
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(net), folder / "net.pt")
        torch.onnx.export(net, (example,), str(folder / "net.onnx"), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
    logreg = LogisticRegression(max_iter=500).fit(train.x.reshape(len(train.x), -1).numpy(), train.y.numpy())
    sio.dump(logreg, folder / "logreg.skops")
    print(f"net: test accuracy {accuracy:.4f}; logreg: {logreg.score(test.x.reshape(len(test.x), -1).numpy(), test.y.numpy()):.4f}")
    print(f"saved net.pt, net.pt2, net_weights.pt, net.onnx, logreg.skops in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/own_model"))
