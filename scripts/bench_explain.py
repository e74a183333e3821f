#!/usr/bin/env python
"""Explainer throughput: xai's path vs the plain library call with its documented defaults, alternated.

Uses the MNIST `cnn` from the model store (trained there first if missing). For each method, both paths
explain the same test images for the predicted class; rounds alternate xai / plain so both see the same
machine state. Targets (2 CPU cores) are printed beside the figures.

    python scripts/bench_explain.py --data-dir ../shared/data --model-dir models
    python scripts/bench_explain.py --methods lime,kernel_shap --images 8
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from hydra.utils import instantiate

from xai_cli.config import compose

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"saliency": "≥ 500 img/s", "grad_cam": "≥ 500 img/s", "deeplift": "≥ 500 img/s",
           "integrated_gradients": "≥ 40 img/s", "deep_shap": "≥ 4× shap", "kernel_shap": "≤ 0.2 s/img",
           "lime": "≤ 0.2 s/img"}


def plain_calls(model: torch.nn.Module, background: torch.Tensor) -> dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    """The libraries' own calls, documented defaults, same method settings where the method needs them."""
    import shap
    from captum.attr import (DeepLift, GradientShap, IntegratedGradients, KernelShap, LayerAttribution, LayerGradCam,
                             Occlusion, Saliency)
    from lime import lime_image

    from xai_cli.explainers.gradient import last_conv
    from xai_cli.explainers.segmentation import superpixels

    prob = lambda x: torch.softmax(model(x), -1)  # noqa: E731

    def grad_cam(x, t):
        cam = LayerGradCam(model, last_conv(model)).attribute(x, target=t)
        return LayerAttribution.interpolate(cam, x.shape[-2:])

    def kernel_shap(x, t):
        for image, target in zip(x, t):
            mask = torch.from_numpy(superpixels(image.permute(1, 2, 0).numpy().astype(np.float64)))[None, None]
            KernelShap(prob).attribute(image[None], target=int(target), feature_mask=mask, n_samples=1000)

    def lime(x, t):
        def classifier_fn(batch):
            with torch.no_grad():
                return prob(torch.from_numpy(batch[..., :1]).permute(0, 3, 1, 2).float()).numpy()
        for image, target in zip(x, t):
            grey = image.permute(1, 2, 0).numpy().astype(np.float64)
            segments = superpixels(grey)
            lime_image.LimeImageExplainer(random_state=0).explain_instance(
                np.repeat(grey, 3, -1), classifier_fn, labels=(int(target),), top_labels=None, hide_color=0.0,
                num_samples=1000, segmentation_fn=lambda _: segments)

    def partition_shap(x, t):
        images = x.permute(0, 2, 3, 1).numpy()
        f = lambda b: prob(torch.from_numpy(b).permute(0, 3, 1, 2).float()).detach().numpy()  # noqa: E731
        shap.PartitionExplainer(f, shap.maskers.Image(np.zeros(images.shape[1:]), images.shape[1:]))(
            images, max_evals=500, silent=True)

    return {
        "saliency": lambda x, t: Saliency(model).attribute(x, target=t),
        "integrated_gradients": lambda x, t: IntegratedGradients(model).attribute(x, target=t, n_steps=50),
        "deeplift": lambda x, t: DeepLift(model).attribute(x, target=t),
        # same sample count as ours (the library default is 5), so that the ratio compares like with like
        "gradient_shap": lambda x, t: GradientShap(model).attribute(x, baselines=background, target=t, n_samples=20),
        "deep_shap": lambda x, t: shap.DeepExplainer(model, background).shap_values(x, check_additivity=False),
        "grad_cam": grad_cam,
        "occlusion": lambda x, t: Occlusion(prob).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2),
                                                            target=t),
        "kernel_shap": kernel_shap,
        "lime": lime,
        "partition_shap": partition_shap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--model-dir", default="models")
    parser.add_argument("--images", type=int, default=16, help="images per measurement (x8 for fast methods)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default="", help="comma-separated subset")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    from xai_cli.analysis.context import RunContext, specs_from

    names = [m for m in args.methods.split(",") if m] or list(TARGETS) + ["gradient_shap", "occlusion", "partition_shap"]
    overrides = ["dataset=mnist", "classifiers=[cnn]", f"paths.data_dir={args.data_dir}",
                 f"paths.model_dir={args.model_dir}", f"explainers=[{','.join(names)}]"]
    cfg = compose("explain", overrides)
    ctx = RunContext.from_config(cfg)
    data = ctx.data
    model = ctx.trained(specs_from(cfg.classifiers))["cnn"].classifier.eval()
    test, train = data.split("test"), data.split("train")
    background = train.x[np.random.default_rng(0).choice(len(train), 100, replace=False)]
    # the plain calls get their own copy: xai's path switches the model's layout (use_fast_layout) in place
    plain = plain_calls(copy.deepcopy(model), background)
    print(f"MNIST cnn, {torch.get_num_threads()} threads, 100 background images; images/s (higher is better)")
    print(f"{'method':22s} {'images':>6s} {'xai':>10s} {'plain':>10s} {'xai/plain':>9s}  target")
    for name in names:
        fast = name in ("saliency", "grad_cam", "deeplift", "gradient_shap")
        n = args.images * (8 if fast else 1)
        x = test.x[:n]
        t = torch.from_numpy(model.predict_proba(x).argmax(1))
        explainer = instantiate(cfg.explainers[name])
        explainer.set_background(background)
        rates: dict[str, list[float]] = {"xai": [], "plain": []}
        for _ in range(args.rounds):
            for path, run in (("xai", lambda: explainer.explain(model, x, t)), ("plain", lambda: plain[name](x, t))):
                start = time.perf_counter()
                run()
                rates[path].append(n / (time.perf_counter() - start))
        ours, lib = statistics.median(rates["xai"]), statistics.median(rates["plain"])
        print(f"{name:22s} {n:6d} {ours:10.1f} {lib:10.1f} {ours / lib:9.2f}  {TARGETS.get(name, '')}"
              f"{f'  ({1 / ours:.3f} s/img)' if not fast else ''}", flush=True)


if __name__ == "__main__":
    main()
