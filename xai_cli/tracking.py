"""Experiment tracking: one run of an analysis is one run in each tracker the `logger` config group names.

What a tracked run holds: the training curves of every model trained during it (each model's keys prefixed
with its name: one run may train several), the resolved config as parameters, every number of metrics.json
as a metric (the keys of the sweep summary, so a tracker's table and ours agree), and the run directory's
files as artifacts where the tracker stores files (MLflow, W&B; CSV and TensorBoard files already live in
the output folder). Lightning's loggers do all of it, from the lightning-hydra-template's configs: one
config per tracker serves the training curves and the analysis alike.

A tracker that cannot be reached fails the run before anything trains, in one line; one that fails later
costs the tracked copy only, never the run directory's own report (it is written first).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from xai_cli.errors import UserError, first_line

log = logging.getLogger("xai")
V = TypeVar("V")

# metrics.json repeats some settings beside its results; trackers have them as parameters already
SETTINGS_ECHOED = {"settings", "seed"}
# the package each tracker needs, for the one-line refusal when it is missing
PACKAGES = {MLFlowLogger: "mlflow", TensorBoardLogger: "tensorboard", WandbLogger: "wandb"}
# Lightning warns when an epoch has fewer batches than its logging interval: small runs, not a problem
warnings.filterwarnings("ignore", ".*is smaller than the logging interval.*")
# MLflow announces its database migrations and Lightning each new experiment: run logs stay about the run
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
logging.getLogger("lightning.pytorch.loggers.mlflow").setLevel(logging.ERROR)


@dataclass(frozen=True)
class RunName:
    """How trackers name a run: a single run by its directory; a sweep's job by its number and overrides, in
    a group (TensorBoard folder, MLflow experiment, W&B group) of its own per sweep."""

    command: str
    run_dir: Path
    output_dir: Path
    sweep: str | None = None       # the sweep directory's name
    job: int | None = None
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        if self.sweep is None:
            return self.run_dir.name
        if self.job is None:  # the sweep's own run (its summary)
            return " ".join(self.overrides)
        return f"{self.job}: {' '.join(self.overrides)}".strip() if self.overrides else str(self.job)

    @property
    def group(self) -> str:
        return self.command if self.sweep is None else f"{self.command} sweep {self.sweep}"


def swept(sweep_dir: Path, overrides: Sequence[str]) -> tuple[str, ...]:
    """A job's overrides that its sweep varies (`seed=2`, not the `logger=mlflow` every job shares), from the
    sweep's command line that Hydra keeps in multirun.yaml; all of them if that cannot be read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        task = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task
        keys = {o.key_or_group for o in OverridesParser.create().parse_overrides(list(task)) if o.is_sweep_override()}
    except Exception:
        return tuple(overrides)
    return tuple(o for o in overrides if o.split("=", 1)[0].lstrip("+~") in keys) or tuple(overrides)


def _path_safe(text: str) -> str:
    return re.sub(r"[^\w.=,+-]+", "_", text)


def _remote(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith(("http://", "https://"))


def _mlflow_defaults(run: RunName, node: DictConfig) -> dict[str, Any]:
    local = not _remote(node.get("tracking_uri"))
    return {"experiment_name": f"xai {run.group}", "run_name": run.name,
            "artifact_location": str((run.output_dir / "mlartifacts").resolve()) if local else None}


# what a tracker's unset (null) settings become, by its Lightning logger class
DEFAULTS: dict[type, Callable[[RunName, DictConfig], dict[str, Any]]] = {
    CSVLogger: lambda run, node: {"save_dir": str(run.run_dir)},
    TensorBoardLogger: lambda run, node: {"name": _path_safe(run.group), "version": _path_safe(run.name)},
    MLFlowLogger: _mlflow_defaults,
    WandbLogger: lambda run, node: {"name": run.name, "group": run.group, "job_type": run.command},
}


def _logger_class(name: str, node: DictConfig) -> type:
    try:
        return get_class(str(node._target_))
    except Exception as exc:
        raise UserError(f"logger.{name}._target_={node.get('_target_')}: {first_line(exc)}") from None


def _registered(registry: Mapping[type, V], cls: type) -> V | None:
    """What a registry keyed by Lightning logger classes holds for `cls` (or a subclass of one)."""
    return next((value for base, value in registry.items() if issubclass(cls, base)), None)


def check_trackers(logger_cfg: DictConfig | None) -> None:
    """Before a run: every tracker's package installed and a tracking server answering (one line if not)."""
    for name, node in (logger_cfg or {}).items():
        cls = _logger_class(name, node)
        package = _registered(PACKAGES, cls)
        if package is not None and not _importable(package):
            raise UserError(f"logger={name} needs the {package} package: pip install {package} "
                            "(or pip install 'xai-cli[tracking]' for every tracker)")
        uri = node.get("tracking_uri")
        if issubclass(cls, MLFlowLogger) and _remote(uri):
            _check_server(name, str(uri))


def _importable(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def _check_server(name: str, uri: str) -> None:
    """Any HTTP answer means a server is there; MLflow's own client would retry a dead address for minutes."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            pass
    except urllib.error.HTTPError:
        pass
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"logger.{name}.tracking_uri={uri}: no tracking server answers there ({reason}); start "
                        "one (mlflow server --host 127.0.0.1 --port PORT) or drop the setting for the local "
                        "store") from None


def flat_params(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted keys; lists as their text (trackers take scalar parameters)."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree if isinstance(tree, (int, float, str, bool)) or tree is None else str(tree)}


MAX_ROWS = 100  # a list of result rows longer than this (per-image records) stays in the run's files


def tracked_numbers(tree: Any, prefix: str = "") -> dict[str, float | int]:
    """Every number of a metrics.json as dotted keys, as the sweep summary names them, plus the rows of its
    result tables (consistency's C per architecture): a row is named by its text fields
    (`table.mlp.integrated_gradients.C`), or by its position when it has none (`evaluation.per_point.3.msp_in`).
    Lists of plain values (indices, class names) are left out."""
    out: dict[str, float | int] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(tracked_numbers(value, f"{prefix}{key}."))
    elif isinstance(tree, list) and tree and len(tree) <= MAX_ROWS and all(isinstance(r, Mapping) for r in tree):
        for i, row in enumerate(tree):
            name = ".".join(str(v) for v in row.values() if isinstance(v, str)) or str(i)
            out.update(tracked_numbers({k: v for k, v in row.items() if not isinstance(v, str)}, f"{prefix}{name}."))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        out[prefix[:-1]] = tree
    return out


def metric_key(key: str) -> str:
    """A metrics.json key as every tracker accepts it (MLflow allows letters, digits and `_-./ `):
    `disagreement.cnn|svm_rbf` -> `disagreement.cnn-svm_rbf`."""
    return re.sub(r"[^A-Za-z0-9_./ -]+", "-", key)


class ModelCurves(Logger):
    """One model's training curves inside the analysis's run: keys prefixed with the model's name, the run
    left open at the fit's end (the analysis logs into it after), hyperparameters left to the run's config."""

    def __init__(self, logger: Logger, label: str) -> None:
        super().__init__()
        self._logger, self._label = logger, label

    @property
    def name(self) -> str | None:
        return self._logger.name

    @property
    def version(self) -> int | str | None:
        return self._logger.version

    @property
    def save_dir(self) -> str | None:
        return self._logger.save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self._logger, "log_dir", None)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._logger.log_metrics({f"{self._label}/{k}": v for k, v in metrics.items()}, step)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the run's parameters are its whole config, logged once

    def save(self) -> None:
        self._logger.save()

    def finalize(self, status: str) -> None:
        self._logger.save()


def _mlflow_artifacts(logger: MLFlowLogger, run_dir: Path) -> None:
    logger.experiment.log_artifacts(logger.run_id, str(run_dir))


def _wandb_artifacts(logger: WandbLogger, run_dir: Path) -> None:
    import wandb

    artifact = wandb.Artifact(_path_safe(f"run-{logger.experiment.id}"), type="xai-run")
    artifact.add_dir(str(run_dir))
    logger.experiment.log_artifact(artifact)


# trackers that keep files: the run directory goes to them as artifacts
ARTIFACTS: dict[type, Callable[[Any, Path], None]] = {MLFlowLogger: _mlflow_artifacts, WandbLogger: _wandb_artifacts}
# trackers whose run Lightning's finalize leaves open: a W&B run stays the process's current run until
# finished, and the next run in the process (a sweep's next job, the next API call) would log into it
CLOSE: dict[type, Callable[[Any, str], None]] = {
    WandbLogger: lambda logger, status: logger.experiment.finish(exit_code=0 if status == "success" else 1)}


@dataclass
class Tracking:
    """The trackers of one run, started (connected) before it trains anything."""

    loggers: dict[str, Logger]
    run: RunName
    failed: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, logger_cfg: DictConfig | Mapping[str, Any] | None, run: RunName) -> Tracking | None:
        # resolved in place: taken out of the run's config, `${paths.output_dir}` would have nothing to point at
        nodes = OmegaConf.create(OmegaConf.to_container(logger_cfg, resolve=True) if isinstance(logger_cfg, DictConfig)
                                 else dict(logger_cfg or {}))
        if not nodes:
            return None
        check_trackers(nodes)
        loggers: dict[str, Logger] = {}
        for name, node in nodes.items():
            fill = _registered(DEFAULTS, _logger_class(str(name), node))
            unset = {k: v for k, v in (fill(run, node) if fill else {}).items() if node.get(k) is None}
            try:
                logger = instantiate(node, **unset)
                _ = logger.experiment  # connects (creates the experiment and run) now, before any training
            except Exception as exc:
                raise UserError(f"logger={name}: {type(exc).__name__}: {first_line(exc)}") from None
            loggers[str(name)] = logger
        names = ", ".join(loggers)
        log.info("tracking this run in %s (%s)", names, run.name)
        return cls(loggers, run)

    def fit_loggers(self, label: str) -> list[Logger]:
        return [ModelCurves(logger, label) for logger in self.loggers.values()]

    def finish(self, params: Mapping[str, Any], metrics: Mapping[str, Any] | None, run_dir: Path | None,
               status: str = "success") -> None:
        """Parameters, numbers and files into every tracker, each on its own: one that fails is named in a
        warning and the others go on (the run directory already holds everything)."""
        numbers = {metric_key(k): v for k, v in tracked_numbers(metrics or {}).items()
                   if k.split(".")[0] not in SETTINGS_ECHOED and k != "schema_version"}
        for name, logger in self.loggers.items():
            try:
                logger.log_hyperparams(dict(params))
                if numbers:
                    logger.log_metrics(numbers)
                upload = _registered(ARTIFACTS, type(logger))
                if upload is not None and run_dir is not None:
                    upload(logger, run_dir)
                logger.finalize(status)
                close = _registered(CLOSE, type(logger))
                if close is not None:
                    close(logger, status)
            except Exception as exc:
                self.failed.append(name)
                log.warning("logger %s failed (%s: %s); the run directory keeps the report", name,
                            type(exc).__name__, first_line(exc))


def log_sweep_summary(logger_cfg: DictConfig | None, command: str, sweep_dir: Path, output_dir: Path) -> None:
    """The sweep's summary table (summary.md, .html, .csv, .json) as a run named "summary" beside the jobs'
    runs, in the trackers that keep files; the others compare the jobs' runs themselves."""
    resolved = OmegaConf.to_container(logger_cfg, resolve=True) if isinstance(logger_cfg, DictConfig) else {}
    keeping = {name: node for name, node in OmegaConf.create(resolved).items()
               if _registered(ARTIFACTS, _logger_class(str(name), node)) is not None}
    summaries = sorted(sweep_dir.glob("summary.*"))
    if not keeping or not summaries:
        return
    try:
        tracking = Tracking.start(OmegaConf.create(keeping),
                                  RunName(command, sweep_dir, output_dir, sweep_dir.name, None, ("summary",)))
    except UserError as exc:
        log.warning("the sweep summary was not tracked: %s", exc)
        return
    if tracking is not None:
        with tempfile.TemporaryDirectory() as folder:
            for path in summaries:
                shutil.copy(path, Path(folder) / path.name)
            tracking.finish({"sweep_dir": str(sweep_dir)}, None, Path(folder))


_active: ContextVar[Tracking | None] = ContextVar("xai_tracking", default=None)


def active() -> Tracking | None:
    """The tracking of the run in progress, if any: models trained now log their curves to it."""
    return _active.get()


@contextlib.contextmanager
def tracking_run(tracking: Tracking | None) -> Iterator[Tracking | None]:
    token = _active.set(tracking)
    try:
        yield tracking
    finally:
        _active.reset(token)
