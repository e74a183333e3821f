"""`xai <command> --cfg job` in a terminal: the composed config as a tree, one highlighted branch per group,
as the lightning-hydra-template's print_config_tree shows it. Piped or in CI, Hydra's plain YAML is kept:
that output is for files and other programs."""

from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.syntax import Syntax
from rich.tree import Tree

# the pipeline's order first (data -> models -> training -> analysis), then whatever else the config holds
FIRST = ("dataset", "classifiers", "classifier", "generator", "trainer", "callbacks", "logger", "paths", "seed")


def config_tree(cfg: DictConfig, resolve: bool = False) -> Tree:
    tree = Tree("config", style="bold", guide_style="dim")
    for key in [*(k for k in FIRST if k in cfg), *(k for k in cfg if k not in FIRST)]:
        node = cfg[key]
        text = (OmegaConf.to_yaml(node, resolve=resolve) if isinstance(node, (DictConfig, ListConfig))
                else f"{node}\n")
        branch = tree.add(f"[bold]{key}[/bold]")
        branch.add(Syntax(text.rstrip("\n") or "{}", "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config_tree(command: str, overrides: Sequence[str], resolve: bool = False) -> None:
    from rich.console import Console

    from xai_cli.config import compose

    Console().print(config_tree(compose(command, list(overrides)), resolve))
