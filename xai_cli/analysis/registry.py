"""Importing every analysis registers its result class (`xai_cli.analysis.result.RESULTS`, by command)."""

from xai_cli.analysis import consistency, counterfactual, discrepancy, explain, train, uncertainty  # noqa: F401
