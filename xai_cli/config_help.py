"""What `xai <command> --help` lists: the command's config groups and settings with their defaults.

Read from the YAML files themselves (PyYAML and a scan for the comment beside each setting) rather than
composed by Hydra, so that help stays instant and shows the defaults as written, comments included.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from xai_cli.config_check import group_options

# Defaults-list entries a user rarely swaps: Hydra's own, the runner, where files go
_PLUMBING = {"_self_", "hydra", "analysis", "paths"}
_SETTING_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<rest>.*)$")
_INTERPOLATION = re.compile(r"^\$\{xai\.suited:(\w+),")


def _comments(path: Path) -> dict[str, str]:
    """Dotted key -> the comment on its line (`n_images: 16  # the first n test images` -> that text)."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in path.read_text().splitlines():
        match = _SETTING_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        comment = match["rest"].partition(" #")[2].strip()
        if comment:
            out[".".join(k for _, k in stack)] = comment
    return out


def _flatten(tree: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(tree, dict) and tree:
        return [item for key, value in tree.items() for item in _flatten(value, f"{prefix}.{key}")]
    return [(prefix, tree)]


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def groups_help(command: str, config_dir: Path) -> list[tuple[str, str]]:
    """(`group=default`, its options) for each group of the command's defaults list."""
    primary = yaml.safe_load((config_dir / f"{command}.yaml").read_text())
    rows = []
    for entry in primary.get("defaults", []):
        if not isinstance(entry, dict):
            continue
        (group, default), = entry.items()
        if group in _PLUMBING:
            continue
        shown = _value(default)
        if isinstance(default, str) and _INTERPOLATION.match(default):
            shown = "(suits the dataset)"
        elif default is None:
            shown = "(none)"
        options = group_options(config_dir, group.partition("@")[0])  # explainer@consistency.x: the explainer group
        rows.append((f"{group}={shown}", "options: " + ", ".join(options)))
    return rows


def settings_help(command: str, config_dir: Path) -> list[tuple[str, str]]:
    """(`key=default`, what it does) for `seed` and every setting of the command's runner."""
    primary = yaml.safe_load((config_dir / f"{command}.yaml").read_text())
    rows = [(f"seed={primary['seed']}", "seeds initialisation, data order, dropout and sampling")] \
        if "seed" in primary else []
    runner = config_dir / "analysis" / f"{command}.yaml"
    comments = _comments(runner)
    for section, tree in (yaml.safe_load(runner.read_text()) or {}).items():
        if section == "analysis":
            continue
        for key, value in _flatten(tree, section):
            rows.append((f"{key}={_value(value)}", comments.get(key, "")))
    return rows


def completions(command: str, config_dir: Path, incomplete: str) -> list[str]:
    """Shell completion of one override: `dataset=` offers the dataset options, `expl` the groups and
    settings that start so (`explainers=`, `explain.n_images=`)."""
    groups = [row.split("=", 1)[0] for row, _ in groups_help(command, config_dir)]
    if "=" in incomplete:
        key, _, partial = incomplete.partition("=")
        if key.partition("@")[0] not in {g.partition("@")[0] for g in groups}:
            return []
        return [f"{key}={option}" for option in group_options(config_dir, key.partition("@")[0]) if option.startswith(partial)]
    keys = [*groups, *(row.split("=", 1)[0] for row, _ in settings_help(command, config_dir))]
    return [f"{key}=" for key in keys if key.startswith(incomplete)]
