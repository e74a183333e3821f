"""Run a command through Hydra's own entry point, so run dirs, multirun, launchers and callbacks all work.

The Typer CLI hands each subcommand here with its arguments untouched. Hydra's compose API would neither
multirun nor make run directories, so the arguments go to `@hydra.main`, as if the command were its own
script.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from xai_cli.config import CONFIG_DIR
from xai_cli.config_check import preflight
from xai_cli.errors import UserError, first_line, user_error_in
from xai_cli.report import sweep
from xai_cli.report.writer import RunReport, atomic_write
from xai_cli.tracking import RunName, Tracking, flat_params, swept, tracking_run

log = logging.getLogger("xai")


class RunFailed(Exception):
    """A run (or some jobs of a sweep) failed; `detail` is the file that tells why."""

    def __init__(self, message: str, detail: Path) -> None:
        super().__init__(message)
        self.detail = detail


def root_cause(exc: BaseException) -> BaseException:
    """What a constructor raised, behind Hydra's `Error in call to target …` wrappers (which name only the
    target: `trainer=gpu` on a CPU node is `MisconfigurationException: No supported gpu backend found!`)."""
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _out_of_time(exc: BaseException | None) -> str | None:
    """The line for a Slurm job whose time ran out: submitit's handler of the warning signal raises its
    UncompletedJobError inside the job when it does not requeue it (requeues spent, or nothing to resume).
    Raised wherever the job was, it may come wrapped by the code it interrupted (inspect's `unsupported
    callable`): the whole chain is searched."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__.startswith("submitit") and sweep.SUBMITIT_TIMED_OUT in str(exc):
            reason = str(exc).split("because:", 1)[-1].strip().rstrip(".")
            return (f"{sweep.TIMED_OUT}: the job neared hydra.launcher.timeout_min and was not requeued "
                    f"({reason}); raise timeout_min or max_num_timeout")
        exc = exc.__cause__ or exc.__context__
    return None


def describe_failure(exc: BaseException) -> str:
    wrapped = user_error_in(exc)
    if wrapped is not None:
        return str(wrapped)
    if isinstance(exc, MissingMandatoryValue):
        return f"{exc.full_key} must be set"
    exc = root_cause(exc)
    timed_out = _out_of_time(exc)
    if timed_out:
        return timed_out
    first = first_line(exc)
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def metric_value(metrics: dict[str, Any], key: str) -> float:
    """The number a hyperparameter sweeper (Optuna) optimises: a dotted key of metrics.json."""
    numbers = sweep.flatten_numbers(metrics)
    if key not in numbers:
        close = [k for k in numbers if k.split(".")[-1] == key.split(".")[-1]] or list(numbers)
        raise UserError(f"optimized_metric={key} is not a number of this run's metrics.json; e.g. "
                        f"{', '.join(close[:5])}")
    return float(numbers[key])


def _run_name(cfg: DictConfig, hydra_cfg: DictConfig, run_dir: Path) -> RunName:
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return RunName(hydra_cfg.job.name, run_dir, Path(cfg.paths.output_dir))
    sweep_dir = Path(hydra_cfg.sweep.dir)
    return RunName(hydra_cfg.job.name, run_dir, Path(cfg.paths.output_dir), sweep_dir.name, int(hydra_cfg.job.num),
                   swept(sweep_dir, list(hydra_cfg.overrides.task)))


def run_task(cfg: DictConfig) -> dict[str, Any] | None:
    """The Hydra task of every command: run the configured analysis into this job's run directory."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    tracking = None
    try:
        atomic_write(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        tracking = Tracking.start(cfg.get("logger"), _run_name(cfg, hydra_cfg, run_dir))
        runner = instantiate(cfg.analysis)
        with tracking_run(tracking):
            metrics = runner.run(cfg, RunReport(run_dir))
        log.info("report: %s", run_dir / "report.html")
        if tracking is not None:  # after the report: a tracker that fails now costs its copy only
            tracking.finish(flat_params(OmegaConf.to_container(cfg, resolve=True)), metrics, run_dir)
        optimized = cfg.get("optimized_metric")
        return metric_value(metrics, str(optimized)) if optimized else metrics
    except Exception as exc:
        message = describe_failure(exc)
        atomic_write(run_dir / "error.txt", message + "\n\n" + traceback.format_exc())
        if tracking is not None:
            tracking.finish(flat_params(OmegaConf.to_container(cfg, resolve=True)), None, run_dir, "failed")
        if multirun:  # one failing job must not stop the sweep; the summary lists it as failed
            log.error("job failed: %s (details: %s)", message, run_dir / "error.txt")
            return None
        raise RunFailed(message, run_dir / "error.txt") from exc  # the CLI prints it, once


class _WithoutHydraJobError:
    """stderr minus the line Hydra writes before re-raising a failed job ("Error executing job with
    overrides: [...]"): the CLI reports the failure itself, in one line."""

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return len(text) if text.startswith(self.PREFIX) else self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding: the real stream's
        return getattr(self._stream, name)


def _prints_job_config(args: list[str]) -> bool:
    """`--cfg job` alone (not a sweep, not one package of it): what the config tree shows."""
    flags = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    pairs = list(zip(args, args[1:]))
    return (("--cfg", "job") in pairs or ("-c", "job") in pairs) and not flags & {"-m", "--multirun", "-p", "--package"}


def launch(command: str, args: list[str]) -> None:
    """Check the overrides, then run `command` as a Hydra app with `args` as its command line."""
    preflight(command, args, CONFIG_DIR)
    if _prints_job_config(args) and sys.stdout.isatty():
        from xai_cli.config_print import print_config_tree

        print_config_tree(command, [a for a in args if not a.startswith("-") and a != "job"], "--resolve" in args)
        return
    # Exceptions must reach the CLI, which prints them as one line, rather than Hydra's report of them.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    saved_argv, saved_stderr = sys.argv, sys.stderr
    sys.argv = [f"xai {command}", *args]
    sys.stderr = _WithoutHydraJobError(saved_stderr)
    sweep.last_outcome, sweep.started = None, None
    try:
        hydra.main(config_path=str(CONFIG_DIR), config_name=command, version_base="1.3")(run_task)()
    except (Exception, KeyboardInterrupt) as exc:
        if sweep.started is None or sweep.last_outcome is not None or not sweep.started.is_dir():
            raise
        # the launcher raised (Ctrl-C, sbatch refused, or a plain submitit launcher on a job that left no
        # result): the summary still lists every job as far as it got
        sys.argv, sys.stderr = saved_argv, saved_stderr
        table = sweep.summarise_sweep(sweep.started)
        if not table[1]:  # nothing was submitted (the controller unreachable)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise RunFailed(f"the sweep stopped before any job started: {describe_failure(exc)}",
                            sweep.started) from exc
        outcome = sweep.summarise_and_print(sweep.started, table)
        still = (f"jobs a scheduler runs go on and write into {sweep.started} (`xai report {sweep.started}` "
                 "summarises them again; scancel stops them)")
        if isinstance(exc, KeyboardInterrupt):
            print(f"sweep interrupted: {still}", file=sys.stderr, flush=True)
            raise
        raise RunFailed(f"the sweep stopped before all its jobs ended ({describe_failure(exc)}); {still}",
                        outcome.summary) from exc
    finally:
        sys.argv, sys.stderr = saved_argv, saved_stderr
    outcome = sweep.last_outcome
    if outcome is not None and outcome.failed:
        raise RunFailed(f"{outcome.failed} of {outcome.jobs} jobs failed; the others finished", outcome.summary)
