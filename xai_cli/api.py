"""The Python API: every analysis as a function of your objects, returning a result that saves and renders.

The CLI composes a config, builds the same objects and calls the same analysis functions, so a run from
Python and a run from the command line with the same settings give the same numbers and share the model
store.
"""

from __future__ import annotations

import copy
import functools
import inspect
from contextvars import ContextVar
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar, Union

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xai_cli.analysis.context import Model, ModelSpec, RunContext, is_fixed, trainer_config
from xai_cli.analysis.consistency import ConsistencyResult, ConsistencySettings, measure_consistency
from xai_cli.analysis.counterfactual import (CounterfactualResult, CounterfactualSettings, build_methods,
                                             find_counterfactuals)
from xai_cli.analysis.counterfactual import check_inputs as check_counterfactual_inputs
from xai_cli.analysis.discrepancy import DiscrepancyResult, DiscrepancySettings, check_inputs, find_discrepancies
from xai_cli.analysis.explain import ExplainResult, ExplainSettings, explain_models
from xai_cli.analysis.result import AnalysisResult, load_result
from xai_cli.analysis.train import SPLITS, TrainResult, evaluate
from xai_cli.analysis.uncertainty import (UncertaintyResult, UncertaintySettings, check_generator,
                                          measure_uncertainty)
from xai_cli.analysis.uncertainty import check_inputs as check_uncertainty_inputs
from xai_cli.config import SUITED, compose, data_kind, group_options
from xai_cli.config_check import _missing_values
from xai_cli.data.base import ArrayDataModule
from xai_cli.errors import UserError
from xai_cli.explainers.base import Explainer
from xai_cli.models.adapters import Outputs, as_classifier
from xai_cli.tracking import RunName, Tracking, check_trackers, flat_params, tracking_run
from xai_cli.training.store import ModelStore

__all__ = ["tracked", "explain", "discrepancy", "consistency", "counterfactual", "uncertainty", "train", "load", "model_spec",
           "module_spec", "classifier_names", "explainer_names", "generator_names"]

# A model: a classifier name xai trains (e.g. "cnn"), a ModelSpec, a torch.nn.Module, a fitted scikit-learn
# estimator, or a callable returning class probabilities.
ModelLike = Union[str, ModelSpec, Any]
Models = Union[Mapping[str, ModelLike], Sequence[str]]
Data = Union[ArrayDataModule, str]
R = TypeVar("R")


class tracked:
    """Track every analysis called inside, as the CLI's `logger=...` does: each call is one tracked run (its
    arguments as parameters, its numbers as metrics, its run directory as artifacts), models trained during
    it log their curves there, and the result is also saved as a run directory under the output folder.

    Args:
        logger: a tracker (`"mlflow"`, `"tensorboard"`, `"csv"`, `"wandb"`) or several (`["csv", "mlflow"]`).
        output_dir: where run directories (and the local trackers' files) go (default: the CLI's outputs/).
        **settings: that tracker's settings (`tracking_uri=...`), or `{"<tracker>.<setting>": ...}` with several.

    Example:
        >>> import xai_cli as xai
        >>> with xai.tracked("mlflow", tracking_uri="http://127.0.0.1:5000"):  # doctest: +SKIP
        ...     xai.explain(["cnn"], "digits", explainers=["saliency"])
    """

    def __init__(self, logger: str | Sequence[str], *, output_dir: str | Path | None = None, **settings: Any) -> None:
        names = [logger] if isinstance(logger, str) else list(logger)
        overrides = [f"logger=[{','.join(names)}]"]
        if output_dir is not None:
            overrides.append(f"paths.output_dir={Path(output_dir).resolve()}")
        cfg = compose("train", overrides)
        prefix = f"{names[0]}." if len(names) == 1 else ""
        for key, value in settings.items():
            tracker, _, setting = f"{prefix}{key}".partition(".")
            if tracker not in cfg.logger or setting not in cfg.logger[tracker]:
                valid = [f"{n}.{k}" for n in cfg.logger for k in cfg.logger[n] if k != "_target_"]
                raise UserError(f"logger has no setting {prefix}{key}; valid: {', '.join(valid)}")
            cfg.logger[tracker][setting] = value
        self.loggers = OmegaConf.to_container(cfg.logger, resolve=True)
        self.output_dir = Path(str(OmegaConf.select(cfg, "paths.output_dir")))
        check_trackers(OmegaConf.create(self.loggers))
        self._token: Any = None

    def __enter__(self) -> "tracked":
        self._token = _tracking_plan.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _tracking_plan.reset(self._token)


_tracking_plan: ContextVar[tracked | None] = ContextVar("xai_api_tracking", default=None)


def _tracked_analysis(analysis: Callable[..., R]) -> Callable[..., R]:
    """An API analysis that, inside `tracked(...)`, is one tracked run saved as a run directory."""
    command = analysis.__name__

    @functools.wraps(analysis)
    def run(*args: Any, **kwargs: Any) -> R:
        plan = _tracking_plan.get()
        if plan is None:
            return analysis(*args, **kwargs)
        bound = inspect.signature(analysis).bind(*args, **kwargs)
        params = {k: v if isinstance(v, (int, float, str, bool)) or v is None else _described(v)
                  for k, v in flat_params(bound.arguments).items()}
        run_dir = plan.output_dir / command / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        tracking = Tracking.start(plan.loggers, RunName(command, run_dir, plan.output_dir))
        try:
            with tracking_run(tracking):
                result = analysis(*args, **kwargs)
        except Exception:
            if tracking is not None:
                tracking.finish(params, None, None, "failed")
            raise
        result.save(run_dir)  # type: ignore[attr-defined]
        if tracking is not None:
            tracking.finish(params, result.metrics, run_dir)  # type: ignore[attr-defined]
        return result

    return run


def _described(value: Any) -> str:
    """A parameter that is an object (your model, a dataset): its type, not its whole repr."""
    text = value if isinstance(value, str) else getattr(value, "name", None) or type(value).__name__
    return str(text)[:250]


def classifier_names() -> list[str]:
    """The classifiers xai can train by name (one YAML file each under configs/classifier/)."""
    return group_options("classifier")


def explainer_names() -> list[str]:
    """The explainers by name (one YAML file each under configs/explainer/)."""
    return group_options("explainer")


def generator_names() -> list[str]:
    """The conditional GANs `uncertainty` can train by name (configs/generator/, but for the β-VAE)."""
    return [g for g in group_options("generator") if g != "beta_vae"]


def _data(data: Data) -> ArrayDataModule:
    if isinstance(data, str):
        from xai_cli.datasets import load

        return load(data)
    if not isinstance(data, ArrayDataModule):
        raise UserError(f"data must be a dataset (xai.datasets.from_arrays(...) or xai.datasets.load(name)), "
                        f"not a {type(data).__name__}")
    data.setup()
    return data


def _base_config(command: str, data: ArrayDataModule, seed: int, model_dir: str | Path | None,
                 trainer: Mapping[str, Any] | None, overrides: Sequence[str] = ()) -> DictConfig:
    """The command's config with `data` in place of the dataset, so that model configs resolve against it."""
    cfg = compose(command, [f"seed={int(seed)}", *overrides])
    OmegaConf.set_struct(cfg, False)
    identity = data.store_identity()
    cfg.dataset = OmegaConf.create(OmegaConf.to_container(identity, resolve=True)
                                   if isinstance(identity, DictConfig) else identity)
    if model_dir is not None:
        cfg.paths.model_dir = str(model_dir)
    if trainer:
        unknown = sorted(set(trainer) - set(cfg.trainer))
        if unknown:
            raise UserError(f"trainer has no setting {', '.join(unknown)}; valid: {', '.join(cfg.trainer)}")
        cfg.trainer = OmegaConf.merge(cfg.trainer, dict(trainer))
    return cfg


def model_spec(name: str, data: Data, **settings: Any) -> ModelSpec:
    """The spec of a classifier xai trains, configured for `data` exactly as the CLI configures it.

    Args:
        name: a classifier option (`classifier_names()`), e.g. "cnn" or "svm_rbf".
        data: the dataset the model is for (its input shape and number of classes fill the config).
        **settings: dotted overrides of the classifier's config, e.g. `{"fit.max_epochs": 2}`.

    Returns:
        A ModelSpec to pass as a model; the store trains it once and serves it afterwards.

    Example:
        >>> import xai_cli as xai
        >>> spec = xai.model_spec("cnn", xai.datasets.load("digits"), **{"fit.max_epochs": 1})
        >>> spec.config.fit.max_epochs
        1
    """
    return _specs([name], _base_config("train", _data(data), 0, None, None), settings)[0]


def module_spec(network: type | str, data: Data, *, name: str | None = None, fit: Mapping[str, Any] | None = None,
                **arguments: Any) -> ModelSpec:
    """The spec of your own torch network class, trained and stored by xai as its own classifiers are (so
    that `consistency` can retrain copies of it, and `train` and the others can use it by spec).

    Args:
        network: an `nn.Module` subclass returning logits, or its import path ("mypkg.nets.Net"); it must be
            importable by name (defined at module level), since the store rebuilds it from its config.
        data: the dataset it is for.
        name: the name in reports and store entries (default: the class name).
        fit: dotted settings over the default fit (the CLI's `classifier/module.yaml`), e.g. `{"max_epochs": 5}`.
        **arguments: the network's constructor arguments (plain values: they are part of the store key).

    Returns:
        A ModelSpec, e.g. for `xai.consistency({"net": spec}, data)`.

    Example:
        >>> import xai_cli as xai
        >>> spec = xai.module_spec("torchvision.models.resnet18", "digits", num_classes=10)  # doctest: +SKIP
    """
    path = network if isinstance(network, str) else f"{network.__module__}.{network.__qualname__}"
    if "<locals>" in path:
        raise UserError(f"{path} is defined inside a function: define it at module level, so that it can be "
                        "imported by name")
    settings = {"model.module._target_": path, **{f"fit.{k}": v for k, v in _dotted(fit or {}).items()}}
    spec = _specs(["module"], _base_config("train", _data(data), 0, None, None), settings)[0]
    config = OmegaConf.to_container(spec.config)
    config["model"]["module"].update(arguments)  # type: ignore[index]
    return ModelSpec(name or path.rsplit(".", 1)[-1], OmegaConf.create(config))


def _specs(names: Sequence[str], cfg: DictConfig, settings: Mapping[str, Any] | None = None) -> list[ModelSpec]:
    """Specs of classifiers by name, composed as the CLI's `classifiers=[...]` and resolved against cfg's data."""
    valid = classifier_names()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UserError(f"unknown classifier {', '.join(unknown)}; xai trains: {', '.join(valid)}")
    chosen = compose("train", [f"classifiers=[{','.join(dict.fromkeys(names))}]"]).classifiers
    out = []
    for name in names:
        node = OmegaConf.merge({"dataset": cfg.dataset, "seed": cfg.seed}, {"model": chosen[name]})
        _apply(node.model, settings, name)
        missing = _missing_values(node.model)
        if missing:
            hint = ": give your network with xai.module_spec(Net, data)" if name == "module" else ""
            raise UserError(f"classifier {name} needs {', '.join(missing)}{hint}")
        resolved = OmegaConf.to_container(node, resolve=True)["model"]  # type: ignore[index]
        out.append(ModelSpec(name, OmegaConf.create(resolved)))
    return out


def _apply(node: DictConfig, settings: Mapping[str, Any] | None, where: str) -> None:
    """Dotted settings merged into a config node; a key the node does not have is one line, not a new key."""
    for key, value in (settings or {}).items():
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(node, parent_key, default=None) if parent_key else node
        if not isinstance(parent, DictConfig) or leaf not in parent.keys():  # keys(): `in` skips ??? values
            raise UserError(f"{where} has no setting {key}; its settings: {', '.join(str(k) for k in node)}")
        OmegaConf.update(node, key, value, merge=True)


def _dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: {"fit": {"steps": 20}} -> {"fit.steps": 20}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _models(models: Models, ctx: RunContext, cfg: DictConfig, outputs: Outputs) -> dict[str, Model]:
    """The user's own objects wrapped and checked first (a bad one is refused before anything trains), then
    names and specs from the store (trained there if missing)."""
    items = {m: m for m in models} if isinstance(models, (list, tuple)) else dict(models)  # type: ignore[arg-type]
    if not items:
        raise UserError("no models given")
    given: dict[str, Model] = {}
    for key, value in items.items():
        if not isinstance(value, (str, ModelSpec)):
            classifier = as_classifier(value, outputs)
            ctx.check(key, classifier)
            given[key] = Model(key, classifier, "given")
    names = [v for v in items.values() if isinstance(v, str)]
    specs = dict(zip(names, _specs(names, cfg))) if names else {}
    out: dict[str, Model] = {}
    for key, value in items.items():
        if key in given:
            out[key] = given[key]
            continue
        spec = specs[value] if isinstance(value, str) else value
        if is_fixed(spec.config):  # a spec of a ready-trained model (classifier=file's config)
            out[key] = ctx.fixed(ModelSpec(key, spec.config))
            continue
        stored = ctx.fetch(spec)
        out[key] = Model(key, stored.model, "trained now" if stored.trained_now else "store", spec, stored)
    return out


def _one(model: ModelLike) -> dict[str, ModelLike]:
    """A single model under its report name: a one-entry mapping {name: model} names it; a name or a spec
    names itself; anything else is "model"."""
    if isinstance(model, Mapping):
        if len(model) != 1:
            raise UserError(f"give one model (or {{name: model}}), not {len(model)}")
        return dict(model)
    return {model if isinstance(model, str) else model.name if isinstance(model, ModelSpec) else "model": model}


def _context(data: ArrayDataModule, cfg: DictConfig) -> RunContext:
    return RunContext(data, ModelStore.from_paths(cfg.paths), trainer_config(cfg), int(cfg.seed))


@_tracked_analysis
def train(models: Models, data: Data, *, seed: int = 0, model_dir: str | Path | None = None,
          trainer: Mapping[str, Any] | None = None, splits: Sequence[str] = SPLITS,
          outputs: Outputs = "logits") -> TrainResult:
    """Train classifiers into the model store (or take them from it) and evaluate them.

    Args:
        models: classifier names (`["cnn", "svm_rbf"]`), or a mapping from report names to names, ModelSpecs
            or your own models (a torch.nn.Module, a fitted scikit-learn estimator, a callable returning
            probabilities), which are evaluated as given and never retrained.
        data: a dataset (`xai.datasets.from_arrays`, `xai.datasets.load`) or a dataset name.
        seed: seeds initialisation, data order and dropout; the same seed gives the same models.
        model_dir: the model store (default: the CLI's, `$XAI_ROOT/models` or ./models).
        trainer: Lightning Trainer settings, e.g. `{"max_epochs": 1, "limit_train_batches": 3}`.
        splits: the splits accuracy is reported on.
        outputs: what your torch modules return: "logits" or "probabilities".

    Returns:
        A TrainResult: `metrics` (accuracy per split, parameters, training time, disagreement), the figures,
        and `models`, the classifiers themselves, ready for the other analyses.

    Example:
        >>> import xai_cli as xai
        >>> result = xai.train(["cnn", "svm_rbf"], "digits")
        >>> result.metrics["models"]["cnn"]["accuracy"]["test"] > 0.9
        True
        >>> result.save("outputs/my_train")  # doctest: +SKIP
    """
    data = _data(data)
    cfg = _base_config("train", data, seed, model_dir, trainer)
    ctx = _context(data, cfg)
    return evaluate(ctx, _models(models, ctx, cfg, outputs), splits)


@_tracked_analysis
def explain(models: Models, data: Data, *, explainers: Sequence[str | Explainer] | Mapping[str, str | Explainer] | None = None,
            n_images: int = 16, indices: Sequence[int] | None = None, target: str = "predicted",
            background_size: int = 64, faithfulness: Mapping[str, Any] | None = None,
            stability: Mapping[str, Any] | None = None, randomization: Mapping[str, Any] | None = None,
            seed: int = 0, model_dir: str | Path | None = None, trainer: Mapping[str, Any] | None = None,
            outputs: Outputs = "logits") -> ExplainResult:
    """Explain test images with every explainer on every model, and measure each explanation method.

    Args:
        models: as in `train`: names xai trains, or your own torch modules (every method applies),
            fitted scikit-learn estimators and probability callables (model-agnostic methods only; the
            others are reported as skipped, with the reason).
        data: a dataset or a dataset name; the test split's images are explained.
        explainers: names (`explainer_names()`), Explainer instances, or a mapping name → either;
            default: all ten.
        n_images: how many test images (the first ones), unless `indices` names them.
        indices: test-split indices to explain.
        target: the class explained: "predicted" or "true".
        background_size: training images used as reference by deep_shap and gradient_shap.
        faithfulness: `{"steps": 20, "baseline": 0.0}` for the deletion/insertion curves.
        stability: `{"n_images": 4, "n_samples": 4, "sigma": 0.01}` for the local Lipschitz estimate.
        randomization: `{"n_images": 8}` for the model-randomisation check.
        seed: seeds the background draw, the explainers' sampling and the random-weights twin.
        model_dir, trainer, outputs: as in `train`.

    Returns:
        An ExplainResult: `metrics["explainers"][explainer][model]` holds time_per_image_s, deletion_auc,
        insertion_auc (and their random-order baselines), stability, randomization_similarity, or
        `skipped`; `attributions` holds the maps; `save(dir)` writes the report.

    Example:
        >>> import xai_cli as xai
        >>> result = xai.explain({"net": my_module, "svm": my_fitted_svc}, data,
        ...                      explainers=["saliency", "kernel_shap"], n_images=8)  # doctest: +SKIP
        >>> result.metrics["explainers"]["saliency"]["net"]["deletion_auc"]  # lower: faithful  # doctest: +SKIP
    """
    data = _data(data)
    settings = ExplainSettings.of({"n_images": n_images, "indices": indices, "target": target,
                                   "background_size": background_size, "faithfulness": faithfulness or {},
                                   "stability": stability or {}, "randomization": randomization or {}})
    chosen = _explainer_names(explainers)
    named = [v for v in chosen.values() if isinstance(v, str)]
    cfg = _base_config("explain", data, seed, model_dir, trainer, [f"explainers=[{','.join(dict.fromkeys(named))}]"])
    ctx = _context(data, cfg)
    ctx.require_images("explain")
    ctx.indices(settings.indices, settings.n_images, "indices")  # before anything trains
    instances = {key: instantiate(cfg.explainers[v]) if isinstance(v, str) else v for key, v in chosen.items()}
    return explain_models(ctx, _models(models, ctx, cfg, outputs), instances, settings)


@_tracked_analysis
def discrepancy(models: Models, data: Data, *, space: str = "latent", generator: Mapping[str, Any] | None = None,
                seed: int = 0, model_dir: str | Path | None = None, trainer: Mapping[str, Any] | None = None,
                outputs: Outputs = "logits", **settings: Any) -> DiscrepancyResult:
    """Where do models of similar accuracy disagree? DIG-CV in a β-VAE's latent space, or DIG on raw inputs.

    Args:
        models: two or more models, as in `train` (any kind: the search only asks for predictions).
        data: a dataset or a dataset name.
        space: "latent" (a β-VAE from the model store, trained there if missing) or "input" (raw features).
        generator: settings of the β-VAE, e.g. `{"latent_dim": 10, "beta": 4}` (the CLI's `generator.*`).
        seed, model_dir, trainer, outputs: as in `train`.
        **settings: the search's settings (the CLI's `discrepancy.*`): anchors (200), anchor_choice
            ("uncertain" or "random"), neighbours (5), n_steps (16), eps (0.001), refine_rounds (2 rounds
            tracing each found area sideways; 0: off), refine_segments (1000), refine_steps (5),
            refine_eps (0.01), max_accuracy_gap (0.01), match_accuracy (False: compare a stronger net by its
            epoch nearest the weakest model's validation accuracy), explain_index (a test image to explain by its
            nearest areas), n_shown (6), ...

    Returns:
        A DiscrepancyResult: `metrics` (accuracies, disagreement_rate, n_areas, border_check, realism, ...),
        `areas` (the arrays of intervals.npz), `traced` (traced.npz), the figures; `save(dir)` writes the report.

    Example:
        >>> import xai_cli as xai
        >>> data = xai.datasets.load("moons")
        >>> result = xai.discrepancy(["mlp", "svm_rbf"], data, space="input")  # doctest: +SKIP
        >>> result.metrics["n_areas"]  # doctest: +SKIP
        717
    """
    data = _data(data)
    s = DiscrepancySettings.of(settings)
    if space not in group_options("space"):
        raise UserError(f"space={space} is not a space: choose one of {', '.join(group_options('space'))}")
    cfg = _base_config("discrepancy", data, seed, model_dir, trainer, [f"space={space}"])
    searched = instantiate(cfg.space)
    ctx = _context(data, cfg)
    check_inputs(ctx, len(models), s)
    vae = _spec_of(cfg, "generator", "beta_vae", generator) if searched.needs_generator else None
    return find_discrepancies(ctx, _models(models, ctx, cfg, outputs), searched, s, vae)


@_tracked_analysis
def consistency(architectures: Models, data: Data, *, perturbation: str = "all", copies: int = 3,
                explainers: Sequence[str | Explainer] | Mapping[str, str | Explainer] | None = None,
                model_agnostic_explainer: str = "kernel_shap", n_per_class: int = 30, test_size: float = 0.3,
                explain_seed: int = 0, background_size: int = 64, figure_images: int = 3, seed: int = 0,
                model_dir: str | Path | None = None, trainer: Mapping[str, Any] | None = None) -> ConsistencyResult:
    """Agree to Disagree: do copies of one architecture, differing in one source of training randomness at a
    time, explain the same images alike?

    Args:
        architectures: classifier names (`["small_cnn", "svm_rbf"]`) or ModelSpecs, or a mapping from report
            names to either. Copies are trained, so a trained model cannot stand for an architecture.
        data: a dataset or a dataset name.
        perturbation: "seed" (init, data order and dropout together), "shuffle", "dropout" or "all".
        copies: copies per perturbation, the base copy included.
        explainers: names or Explainer instances (default: gradient_shap).
        model_agnostic_explainer: the explainer for architectures none of `explainers` can explain.
        n_per_class: test images per class explained by every copy.
        test_size: share of each class's images held out to test the distinguishing regression.
        explain_seed: the explainers' sampling, the same for every copy.
        background_size, figure_images, seed, model_dir, trainer: as in `explain` and `train`.

    Returns:
        A ConsistencyResult: `metrics["table"]` (per architecture and explainer: alpha, C, C_by_perturbation,
        accuracy_mean, accuracy_std), `metrics["pairs"]` (S, jsd, ks, wilcoxon per pair), the figures.

    Example:
        >>> import xai_cli as xai
        >>> result = xai.consistency(["small_cnn"], "digits", perturbation="seed", copies=2)  # doctest: +SKIP
        >>> round(result.metrics["table"][0]["C"], 3)  # doctest: +SKIP
        0.044
    """
    data = _data(data)
    s = ConsistencySettings.of({"perturbation": perturbation, "copies": copies, "n_per_class": n_per_class,
                                "test_size": test_size, "explain_seed": explain_seed,
                                "background_size": background_size, "figure_images": figure_images})
    chosen = _explainer_names(explainers if explainers is not None else ["gradient_shap"])
    if model_agnostic_explainer not in explainer_names():
        raise UserError(f"unknown explainer {model_agnostic_explainer}; valid: {', '.join(explainer_names())}")
    named = [v for v in chosen.values() if isinstance(v, str)]
    cfg = _base_config("consistency", data, seed, model_dir, trainer,
                       [f"explainers=[{','.join(dict.fromkeys(named))}]",
                        f"explainer@consistency.model_agnostic_explainer={model_agnostic_explainer}"])
    items = {a: a for a in architectures} if isinstance(architectures, (list, tuple)) else dict(architectures)  # type: ignore[arg-type]
    if not items:
        raise UserError("no architectures given")
    trained = [k for k, v in items.items() if not isinstance(v, (str, ModelSpec))]
    if trained:
        raise UserError(f"consistency retrains copies of an architecture: give classifier names or ModelSpecs, "
                        f"not a trained model ({', '.join(trained)})")
    names = [v for v in items.values() if isinstance(v, str)]
    specs = dict(zip(names, _specs(names, cfg))) if names else {}
    architectures_ = [ModelSpec(key, (specs[v] if isinstance(v, str) else v).config) for key, v in items.items()]
    factories = {key: (partial(instantiate, cfg.explainers[v]) if isinstance(v, str) else partial(copy.deepcopy, v))
                 for key, v in chosen.items()}
    fallback = (model_agnostic_explainer, partial(instantiate, cfg.consistency.model_agnostic_explainer))
    return measure_consistency(_context(data, cfg), architectures_, factories, fallback, s)


@_tracked_analysis
def counterfactual(model: ModelLike, data: Data, *, methods: Sequence[str] | None = None,
                   target: str | int = "second", n_images: int = 8, indices: Sequence[int] | None = None,
                   figure_images: int = 12, method_settings: Mapping[str, Mapping[str, Any]] | None = None,
                   generator: Mapping[str, Any] | None = None, seed: int = 0, model_dir: str | Path | None = None,
                   trainer: Mapping[str, Any] | None = None, outputs: Outputs = "logits") -> CounterfactualResult:
    """The smallest realistic change that makes a classifier predict another class, by each method.

    Args:
        model: one model, as in `train` (a name, a ModelSpec, a torch module, a fitted estimator, a callable),
            or `{report_name: model}`; wachter and prototype need gradients (a torch module), latent_rl
            only predictions.
        data: a dataset of images, or its name.
        methods: from "wachter", "prototype", "latent_rl" (default: all three; configs/counterfactual_method/).
        target: "second" (each image's second most likely class) or a class index.
        n_images, indices: which test images (the first n, unless indices names them).
        figure_images: rows of the figure.
        method_settings: per method, settings over its config (the CLI's `methods.<method>.*`; those of
            methods not chosen are not used), e.g.
            `{"wachter": {"steps": 40}, "latent_rl": {"fit": {"steps": 200}}}`.
        generator: settings of the β-VAE the prototype and latent methods work in (the CLI's `generator.*`).
        seed, model_dir, trainer, outputs: as in `train`.

    Returns:
        A CounterfactualResult: `metrics["methods"][method]` holds validity, l1, l2, sparsity,
        in_distribution, nearest_train_rms and time_per_cf_s (or `skipped`); `counterfactuals` the arrays.

    Example:
        >>> import xai_cli as xai
        >>> result = xai.counterfactual(my_module, "digits", methods=["wachter"], n_images=4)  # doctest: +SKIP
        >>> result.metrics["methods"]["wachter"]["validity"]  # share of images sent to their target  # doctest: +SKIP
    """
    data = _data(data)
    s = CounterfactualSettings.of({"target": target, "n_images": n_images, "indices": indices,
                                   "figure_images": figure_images})
    valid = group_options("counterfactual_method")
    names = list(dict.fromkeys(methods)) if methods is not None else valid
    unknown = [m for m in [*names, *(method_settings or {})] if m not in valid]
    if unknown or not names:
        raise UserError(f"unknown counterfactual method {', '.join(unknown) or '(none chosen)'}; "
                        f"valid: {', '.join(valid)}")
    cfg = _base_config("counterfactual", data, seed, model_dir, trainer, [f"methods=[{','.join(names)}]"])
    for name, values in (method_settings or {}).items():
        if name in cfg.methods:  # settings of a known method not chosen this time are left unused
            _apply(cfg.methods[name], _dotted(values), f"method {name}")
    vae = _spec_of(cfg, "generator", "beta_vae", generator)  # first: latent_rl's actor interpolates generator.*
    chosen = build_methods(cfg.methods)
    ctx = _context(data, cfg)
    check_counterfactual_inputs(ctx, s)
    (handle,) = _models(_one(model), ctx, cfg, outputs).values()
    settings = {m: OmegaConf.to_container(cfg.methods[m], resolve=True) for m in chosen}
    return find_counterfactuals(ctx, handle, vae, chosen, s, settings)


@_tracked_analysis
def uncertainty(model: ModelLike | None, data: Data, *, generator: str | None = None,
                generator_settings: Mapping[str, Any] | None = None, seed: int = 0,
                model_dir: str | Path | None = None, trainer: Mapping[str, Any] | None = None,
                outputs: Outputs = "logits", **settings: Any) -> UncertaintyResult:
    """What makes a classifier uncertain: a GAN conditioned on class and on the classifier's confidence (MSP),
    trained against the frozen classifier, then asked for every (class, MSP) of a grid.

    Args:
        model: one model, as in `train` (a name, a ModelSpec, a torch module, a fitted estimator, a callable
            returning probabilities), or `{report_name: model}`; None: the classifier that suits the data
            (cnn on images, mlp on points). `aux_weight` > 0 needs a torch module (its gradients).
        data: a dataset or a dataset name.
        generator: a conditional GAN (`generator_names()`); None: the one that suits the data (stylegan2_lite
            up to 32 px, mlp_gan_images above, mlp_gan on points).
        generator_settings: dotted settings over the generator's config, e.g. `{"fit.steps": 2000}`.
        seed, model_dir, trainer, outputs: as in `train`.
        **settings: the CLI's `uncertainty.*`: aux_weight (0.0), condition_class ("predicted" or "true"),
            grid_points (7), msp_low (0.4), n_per_point (50), shown_msp ([1.0, 0.7]), n_shown (8),
            n_realism (1000), explain_index (a test image made progressively less confident), inversion.

    Returns:
        An UncertaintyResult: `metrics["evaluation"]` holds msp_pearson, msp_spearman, msp_mae,
        class_agreement, per_point and (images) realism; the figures; `save(dir)` writes the report.

    Example:
        >>> import xai_cli as xai
        >>> result = xai.uncertainty(None, "moons", generator_settings={"fit.steps": 1500})  # doctest: +SKIP
        >>> round(result.metrics["evaluation"]["msp_pearson"], 3)  # doctest: +SKIP
        0.745
    """
    data = _data(data)
    s = UncertaintySettings.of(settings)
    suited = SUITED[data_kind(data.input_shape)]
    name = generator or suited["generator"]
    if name not in generator_names():
        raise UserError(f"unknown generator {name}; valid: {', '.join(generator_names())}")
    cfg = _base_config("uncertainty", data, seed, model_dir, trainer, [f"generator={name}"])
    gan = _spec_of(cfg, "generator", name, generator_settings)
    ctx = _context(data, cfg)
    check_uncertainty_inputs(ctx, s)
    check_generator(gan)
    model = suited["classifier"] if model is None else model
    (handle,) = _models(_one(model), ctx, cfg, outputs).values()
    return measure_uncertainty(ctx, handle, gan, s)


def _spec_of(cfg: DictConfig, group: str, name: str, settings: Mapping[str, Any] | None) -> ModelSpec:
    """The spec of the model config at `cfg.<group>` (named `name`) with `settings` merged into the config
    itself (so that what interpolates it, e.g. an actor's latent size, follows), resolved against the data."""
    _apply(cfg[group], settings, group)
    node = OmegaConf.merge({"dataset": cfg.dataset, "seed": cfg.seed}, {group: cfg[group]})
    return ModelSpec(name, OmegaConf.create(OmegaConf.to_container(node, resolve=True)[group]))  # type: ignore[index]


def _explainer_names(explainers: Any) -> dict[str, str | Explainer]:
    if explainers is None:
        explainers = list(compose("explain").explainers)
    items = dict(explainers) if isinstance(explainers, Mapping) else {
        (e if isinstance(e, str) else type(e).__name__): e for e in explainers}
    valid = explainer_names()
    unknown = [v for v in items.values() if isinstance(v, str) and v not in valid]
    if unknown:
        raise UserError(f"unknown explainer {', '.join(unknown)}; valid: {', '.join(valid)}")
    bad = [k for k, v in items.items() if not isinstance(v, (str, Explainer))]
    if bad:
        raise UserError(f"explainer {', '.join(bad)}: give a name or an xai_cli.explainers Explainer")
    return items


def load(run_dir: str | Path) -> AnalysisResult:
    """The result of a finished run directory (CLI or Python), ready to re-render or read."""
    return load_result(run_dir)
