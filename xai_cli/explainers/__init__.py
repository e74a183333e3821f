"""Explainers: one class per method, one call `explain(model, x, target) -> (N, H, W)` attributions.

Each wraps the library that implements the method (captum, shap, lime); positive values are evidence
for the target class. Gradient methods declare `needs_gradients` and are skipped for scikit-learn models.
"""

from xai_cli.explainers.base import Explainer, NotApplicable

__all__ = ["Explainer", "NotApplicable"]
