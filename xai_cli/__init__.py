"""xai: train image classifiers, then interrogate them.

The Python API (the CLI runs the same functions)::

    import xai_cli as xai
    data = xai.datasets.load("digits")                      # or xai.datasets.from_arrays(x_train, y_train, ...)
    result = xai.explain({"net": my_module, "svm": my_fitted_svc}, data, explainers=["saliency", "kernel_shap"])
    result.metrics["explainers"]["saliency"]["net"]["deletion_auc"]
    result.save("outputs/my_run")                          # metrics.json, report.md, report.html, figures/
    net = xai.load_model("net.pt", channels=1, image_size=28)  # TorchScript, state dict, .ckpt, .skops, .onnx

Names are imported on first use, so `import xai_cli` (and the CLI's start) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "datasets": ("xai_cli.datasets", None),
    "train": ("xai_cli.api", "train"),
    "explain": ("xai_cli.api", "explain"),
    "discrepancy": ("xai_cli.api", "discrepancy"),
    "counterfactual": ("xai_cli.api", "counterfactual"),
    "consistency": ("xai_cli.api", "consistency"),
    "uncertainty": ("xai_cli.api", "uncertainty"),
    "load": ("xai_cli.api", "load"),
    "tracked": ("xai_cli.api", "tracked"),
    "model_spec": ("xai_cli.api", "model_spec"),
    "module_spec": ("xai_cli.api", "module_spec"),
    "load_model": ("xai_cli.models.files", "load_model"),
    "classifier_names": ("xai_cli.api", "classifier_names"),
    "explainer_names": ("xai_cli.api", "explainer_names"),
    "generator_names": ("xai_cli.api", "generator_names"),
    "ModelSpec": ("xai_cli.analysis.context", "ModelSpec"),
    "AnalysisResult": ("xai_cli.analysis.result", "AnalysisResult"),
    "TrainResult": ("xai_cli.analysis.train", "TrainResult"),
    "ExplainResult": ("xai_cli.analysis.explain", "ExplainResult"),
    "DiscrepancyResult": ("xai_cli.analysis.discrepancy", "DiscrepancyResult"),
    "CounterfactualResult": ("xai_cli.analysis.counterfactual", "CounterfactualResult"),
    "ConsistencyResult": ("xai_cli.analysis.consistency", "ConsistencyResult"),
    "UncertaintyResult": ("xai_cli.analysis.uncertainty", "UncertaintyResult"),
    "UserError": ("xai_cli.errors", "UserError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'xai_cli' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
