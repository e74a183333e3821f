"""Classifiers. Every one answers `predict_proba(x) -> (N, K)`; the torch ones are also differentiable.

Activations are separate, non-in-place modules, one per use: shap's DeepExplainer and captum's DeepLift
attach their rules to modules and break on functional, reused or in-place activations.
"""

from xai_cli.models.classifiers.base import Classifier, TorchClassifier

__all__ = ["Classifier", "TorchClassifier"]
