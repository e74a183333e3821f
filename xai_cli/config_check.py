"""Check a command's overrides before Hydra starts a run, and say what is wrong in one line.

Hydra reports a bad option as a multi-line message with its search path, and accepts a wrong value type
silently (`seed=abc` becomes a string that fails deep inside training). Composing the config once here,
with the first value of every sweep, catches both before any run directory exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xai_cli.config import SET_GROUPS  # importing it registers the set groups and the defaults resolver
from xai_cli.errors import UserError, first_line, user_error_in, user_errors_unwrapped

RUN_DIRS = ("hydra.run.dir", "hydra.sweep.dir")  # where runs are written: never into one that holds a run
GENERATIVE = ("discrepancy", "counterfactual", "uncertainty")  # the commands that train a model of the images
# Settings that count something, and the least value that means anything: below it a run would store an
# untrained model as a success, take an argmax over no images, or pair one copy with none.
AT_LEAST = {"trainer.max_epochs": 1, "explain.n_images": 1, "explain.background_size": 1,
            "explain.faithfulness.steps": 2, "counterfactual.n_images": 1, "consistency.copies": 2,
            "consistency.n_per_class": 1, "discrepancy.n_steps": 2, "uncertainty.grid_points": 2,
            "uncertainty.n_per_point": 1}
AT_LEAST_IN_EVERY_FIT = {"max_epochs": 1, "steps": 1}  # each model's own fit.max_epochs / fit.steps
SET_COMMANDS = ("train", "explain", "discrepancy", "consistency")  # the commands over a set of classifiers
POSITIVE = ("discrepancy.eps",)  # a precision: 0 would mean no refinement at all

# Settings that moved: old spelling -> new. An override of the old one gets a line naming the new one.
RENAMED = {"analysis.splits": "train.splits", "discrepancy.space": "space", "discrepancy.spaces": "space",
           "counterfactual.methods": "methods", "counterfactual.registry": "methods"}


def config_groups(config_dir: Path) -> set[str]:
    """Every config group (folder of YAML files) under config_dir, e.g. 'dataset', 'hydra/launcher', and the
    set groups registered over them ('classifiers', 'explainers', 'methods')."""
    folders = {str(p.relative_to(config_dir)) for p in config_dir.rglob("*") if p.is_dir() and any(p.glob("*.yaml"))}
    return folders | set(SET_GROUPS)


def group_options(config_dir: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir / SET_GROUPS.get(group, group)).glob("*.yaml"))


def override_tokens(args: list[str]) -> list[str]:
    """The Hydra overrides among the arguments (flags such as --cfg and their values are not)."""
    return [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]


def describe_config_error(exc: BaseException, config_dir: Path, base_keys: list[str] | None = None) -> str:
    """One line for a Hydra/OmegaConf composition error."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        if group:
            options = list(exc.options or group_options(config_dir, group))
            return f"unknown {group} '{option}'; valid: {', '.join(options)}"
    message = str(exc)
    match = re.search(r"Could not override '([^']+)'", message)
    if match:
        key = match.group(1)
        valid = f"; valid: {', '.join(base_keys)}" if base_keys else ""
        return f"unknown option '{key}'{valid}"
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override '{exc.override}': {message.splitlines()[0]}"
    # some wrap the real error without a message of their own (an invalid key in a config file)
    lines = message.strip().splitlines() or str(exc.__cause__ or type(exc).__name__).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (list, ListConfig)):
        return "a list, e.g. [a,b]"
    return "a mapping"


def _compatible(expected: Any, value: Any) -> bool:
    if value is None or expected is None:
        return True
    if isinstance(expected, bool):
        return isinstance(value, bool)
    if isinstance(expected, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(expected, (list, ListConfig)):
        return isinstance(value, list)
    if isinstance(expected, (dict, DictConfig)):
        return isinstance(value, dict)
    return True  # strings take whatever Hydra parsed (names, paths, numbers used as names)


def _values(override: Override) -> list[Any]:
    return list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]


def _first(override: Override) -> str:
    if override.is_sweep_override():
        return f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}"
    return override.input_line or ""


# The flags of @hydra.main's own parser, which a command forwards (anything else would get argparse's usage)
HYDRA_FLAGS = {"-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "--resolve", "-p", "--package", "-r",
               "--run", "-m", "--multirun", "-sc", "--shell-completion", "-cp", "--config-path", "-cn",
               "--config-name", "-cd", "--config-dir", "--experimental-rerun", "-i", "--info"}


def preflight(command: str, args: list[str], config_dir: Path) -> None:
    """Raise UserError (one line) if the overrides cannot make a valid config for `command`."""
    flags = [a for a in args if a.startswith("-") and a.split("=", 1)[0] not in HYDRA_FLAGS]
    if flags:
        raise UserError(f"unknown flag {flags[0]}: xai {command} takes -m/--multirun, --cfg job|hydra|all, "
                        f"--resolve, Hydra's --info and --hydra-help, and key=value overrides (xai {command} --help)")
    tokens = override_tokens(args)
    try:
        overrides = OverridesParser.create().parse_overrides(tokens)
    except OverrideParseException as exc:
        raise UserError(describe_config_error(exc, config_dir)) from None

    groups = config_groups(config_dir)
    run_dirs: list[tuple[str, str]] = []  # (setting, value) of the run and sweep directories asked for
    group_overrides: list[str] = []
    group_alternatives: list[tuple[int, str]] = []  # (position in group_overrides, another swept option)
    value_overrides: list[Override] = []
    for o in overrides:
        key = o.key_or_group
        for old, new in RENAMED.items():
            if key == old or key.startswith(old + "."):
                raise UserError(f"{key} is now {new + key[len(old):]}: e.g. {new + key[len(old):]}=...")
        if key in RUN_DIRS and not o.is_sweep_override():
            run_dirs.append((key, str(o.value())))
        if key in ("hydra.launcher.tasks_per_node", "hydra.launcher.nodes"):
            _check_one_task(key, _values(o))
        if key.startswith("hydra."):
            continue  # launcher/run settings: Hydra checks them itself
        if key in groups or "/" in key or "@" in key:
            if o.is_sweep_override():
                group_alternatives += [(len(group_overrides), f"{o.get_key_element()}={v}")
                                       for v in list(o.sweep_string_iterator())[1:]]
            group_overrides.append(_first(o))
        else:
            value_overrides.append(o)

    top_keys: list[str] | None = None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3", job_name=command):
            # the command's own options, to list when an override names none of them
            top_keys = [f"{k}=…" for k in compose(config_name=command)] + ["experiment=…"]
            base = compose(config_name=command, overrides=group_overrides)
            for position, alternative in group_alternatives:  # every option a sweep will use must exist
                compose(config_name=command, overrides=[*group_overrides[:position], alternative,
                                                        *group_overrides[position + 1:]])
            for o in value_overrides:
                _check_value(base, o, top_keys)
            final = compose(config_name=command, overrides=group_overrides + [_first(o) for o in value_overrides])
    except (ConfigCompositionException, OverrideParseException, OmegaConfBaseException) as exc:
        raise UserError(describe_config_error(exc, config_dir, top_keys)) from None
    finally:
        GlobalHydra.instance().clear()

    for setting, value in run_dirs:
        _refuse_existing_run(setting, value, final)
    missing = _missing_values(final)
    if missing:
        raise UserError(f"{', '.join(missing)} must be set, e.g. {missing[0]}=<value>")
    _check_counts(command, final)
    if isinstance(final.get("trainer"), DictConfig):
        from xai_cli.training.parallel import check_parallel  # imports torch: only once a run is asked for

        _raise_user_errors(lambda: check_parallel(final.trainer))
    if isinstance(final.get("logger"), DictConfig) and final.logger:
        from xai_cli.tracking import check_trackers  # imports Lightning: only when a tracker is asked for

        check_trackers(final.logger)
    _check_dataset(final)
    _check_generator(command, final)
    _check_fixed_models(command, final)


def _check_one_task(key: str, values: list[Any]) -> None:
    """A Slurm job of several tasks would run the whole command in each (see training/parallel.py)."""
    many = [v for v in values if isinstance(v, int) and v > 1]
    if many:
        raise UserError(f"{key}={many[0]}: each task would run the whole command; xai runs one task per job and "
                        "trains on several devices of it with trainer=ddp (hydra/launcher=slurm_gpu_node)")


def _check_counts(command: str, cfg: DictConfig) -> None:
    """Counts below what means anything, a precision of zero, and an empty set of classifiers: one line."""
    if command in SET_COMMANDS and not (isinstance(cfg.get("classifiers"), DictConfig) and len(cfg.classifiers)):
        raise UserError("no classifiers selected: e.g. 'classifiers=[cnn,svm_rbf]'")
    least = dict(AT_LEAST)
    for models in ("classifiers", "classifier", "generator"):
        node = OmegaConf.select(cfg, models, default=None, throw_on_resolution_failure=False)
        specs = node.items() if models == "classifiers" and isinstance(node, DictConfig) else [(models, node)]
        for name, spec in specs:
            fit = spec.get("fit") if isinstance(spec, DictConfig) else None
            if isinstance(fit, DictConfig):
                prefix = f"classifiers.{name}" if models == "classifiers" else models
                least.update({f"{prefix}.fit.{k}": v for k, v in AT_LEAST_IN_EVERY_FIT.items() if k in fit})
    for key, minimum in least.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < minimum:
            raise UserError(f"{key} must be at least {minimum}, got {value}")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise UserError(f"{key} must be above 0, got {value}")


def _check_dataset(cfg: DictConfig) -> None:
    """The dataset's settings resolved, its constructor run and its cheap checks (`check`: an npz's labels and
    pixels, a folder's images found): a missing file, a class count the data contradicts or labels that are
    not class indices are one line now, not a failed run."""
    if isinstance(cfg.get("dataset"), DictConfig):
        data = _construct(cfg.dataset)
        if data is not None:
            _raise_user_errors(data.check)


def _check_generator(command: str, cfg: DictConfig) -> None:
    """The generative model a command trains, built untrained: an image size it cannot make is one line now,
    not a failed run after its classifiers have trained."""
    if command not in GENERATIVE or not isinstance(cfg.get("generator"), DictConfig):
        return
    if command == "discrepancy" and not str(cfg.get("space", {}).get("_target_", "")).endswith("LatentSpace"):
        return  # DIG in the input space needs no β-VAE
    _construct(cfg.generator.model)


def _construct(node: DictConfig) -> Any:
    """Instantiate a config node (None if that fails other than with a UserError)."""
    from hydra.utils import instantiate

    return _raise_user_errors(lambda: instantiate(node))


def _raise_user_errors(step: Any) -> Any:
    """Run `step`, raising the UserError it raises, or raised through a resolver or constructor; any other
    failure the run reports, with its traceback in error.txt, so here it is let pass (None)."""
    try:
        with user_errors_unwrapped():
            return step()
    except UserError:
        raise
    except Exception:
        return None


def _check_fixed_models(command: str, cfg: DictConfig) -> None:
    """Models given by file are loaded and held against the dataset's declared shape and classes now, before
    Hydra makes a run directory: a wrong file is one line, not a failed run."""
    from xai_cli.analysis.context import ModelSpec, is_fixed

    chosen = dict(cfg.classifiers) if "classifiers" in cfg else {"classifier": cfg.classifier} if "classifier" in cfg else {}
    fixed = {str(name): node for name, node in chosen.items() if isinstance(node, DictConfig) and is_fixed(node)}
    if not fixed:
        return
    if command == "consistency":
        from xai_cli.analysis.consistency import check_trainable

        check_trainable([ModelSpec(name, node) for name, node in fixed.items()])
    try:
        shape = [int(v) for v in cfg.dataset.input_shape]
        num_classes = int(cfg.dataset.num_classes)
    except (OmegaConfBaseException, TypeError, ValueError):
        return  # the dataset's shape is known only once it is read: the run checks on real inputs
    import torch
    from hydra.utils import instantiate

    from xai_cli.models.adapters import check_contract

    for name, node in fixed.items():
        try:
            model = instantiate(node.model)
        except Exception as exc:
            cause = exc.__cause__ or exc  # instantiate's wrapper names only the target
            raise user_error_in(exc) or UserError(f"{name}: {type(cause).__name__}: {first_line(cause)}") from None
        # zeros of the declared shape: enough for a wrong channel count, image size or class count to show
        check_contract(name, model, torch.zeros(2, *shape), num_classes, cfg.dataset.get("class_names"))


def _refuse_existing_run(setting: str, value: str, cfg: DictConfig) -> None:
    """A run or sweep directory that already holds something is refused, judged on the final path: with its
    interpolations resolved against the config (`${paths.output_dir}/x`) and `..` and links followed."""
    if "${" in value:
        node = OmegaConf.create({"dir": value})
        node._set_parent(cfg)  # interpolations resolve from the command's config, as Hydra's do
        try:
            value = str(node.dir)
        except OmegaConfBaseException:
            return  # Hydra's own resolvers (${now:...}) name a fresh directory
    target = Path(value).expanduser().resolve()
    if target.is_dir() and any(target.iterdir()):
        raise UserError(f"{target} already holds a run and earlier runs are never overwritten: "
                        f"choose another {setting}")


def _missing_values(cfg: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """Keys whose value is literally ??? (interpolations pointing at them are not listed twice)."""
    out: list[str] = []
    keys = range(len(cfg)) if isinstance(cfg, ListConfig) else list(cfg.keys())
    for key in keys:
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            out.append(full)
            continue
        if OmegaConf.is_interpolation(cfg, key):
            continue
        child = cfg._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)):
            out += _missing_values(child, f"{full}.")
    return out


def _check_value(base: DictConfig, o: Override, top_keys: list[str]) -> None:
    """An override of a plain value must name an existing key and keep that key's type."""
    key = o.key_or_group
    if o.is_delete() or o.is_add() or o.is_force_add():
        return
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(base, parent_key, default=None, throw_on_resolution_failure=False) if parent_key else base
    if isinstance(parent, ListConfig):
        return  # an element of a list, e.g. dataset.input_shape.0
    if not isinstance(parent, DictConfig) or leaf not in parent.keys():  # `in` alone skips ??? values
        if isinstance(parent, DictConfig):
            valid = ", ".join(str(k) for k in parent) if parent_key else ", ".join(top_keys)
            where = f" in {parent_key}" if parent_key else ""
            raise UserError(f"unknown option '{key}'{where}; valid: {valid}")
        raise UserError(f"unknown option '{key}'")
    if OmegaConf.is_missing(parent, leaf):
        return  # ??? values take any type
    current = OmegaConf.select(base, key, default=None, throw_on_resolution_failure=False)
    for value in _values(o):
        if not _compatible(current, value):
            raise UserError(f"{key} expects {_type_name(current)}, got '{value}'")
