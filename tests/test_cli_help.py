"""A terminal that helps: --help lists each command's settings, the shell completes overrides, no noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xai_cli.cli import COMMANDS, app
from xai_cli.config import CONFIG_DIR
from xai_cli.config_help import completions
from tests.conftest import xai_command


@pytest.mark.parametrize("command, group, setting", [
    ("train", "classifiers=[cnn,svm_rbf]", "train.splits=[train,val,test]"),
    ("explain", "explainers=[saliency,", "explain.n_images=16"),
    ("discrepancy", "space=latent", "discrepancy.anchors=200"),
    ("consistency", "classifiers=[small_cnn]", "consistency.copies=3"),
    ("uncertainty", "generator=(suits the dataset)", "uncertainty.grid_points=7"),
    ("counterfactual", "methods=[wachter,prototype,latent_rl]", "counterfactual.n_images=8"),
])
def test_help_lists_the_commands_settings_with_their_defaults(command: str, group: str, setting: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the help is wrapped
    assert group in text and setting in text and "dataset=digits" in text
    assert "options: digits, fashion_mnist," in text and "seed=0" in text


def test_help_shows_the_comment_beside_each_setting() -> None:
    text = " ".join(CliRunner().invoke(app, ["explain", "--help"], terminal_width=200).output.split())
    assert "explain.stability.n_samples=4 noisy copies per image" in text


def test_every_command_has_its_help() -> None:
    for command in COMMANDS:
        assert CliRunner().invoke(app, [command, "--help"]).exit_code == 0


def test_overrides_complete_from_the_config_tree() -> None:
    assert completions("explain", CONFIG_DIR, "dataset=m") == ["dataset=mnist", "dataset=mnist_corrupted",
                                                               "dataset=moons"]
    assert completions("explain", CONFIG_DIR, "explainer") == ["explainers="]
    assert "explain.n_images=" in completions("explain", CONFIG_DIR, "explain.")
    assert completions("counterfactual", CONFIG_DIR, "methods=w") == ["methods=wachter"]
    assert completions("explain", CONFIG_DIR, "seed=") == []  # a value, not an option: nothing to offer


def test_the_shell_hook_completes(tmp_path: Path) -> None:
    env = {**os.environ, "_XAI_COMPLETE": "complete_bash", "COMP_WORDS": "xai train dataset=fa", "COMP_CWORD": "2"}
    result = subprocess.run(xai_command(), env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.stdout.split() == ["dataset=fashion_mnist", "dataset=fashion_mnist_subset"], result.stderr


def test_no_srun_hint_outside_a_slurm_job(tmp_path: Path) -> None:
    """Lightning suggests `srun` on every Trainer where the command exists; outside a job it never applies."""
    (tmp_path / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "srun").chmod(0o755)
    code = ("from omegaconf import OmegaConf\nfrom xai_cli.training.trainer import build_trainer\n"
            "build_trainer(OmegaConf.create({'_target_': 'lightning.pytorch.Trainer', 'accelerator': 'cpu'}), 1, 't')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    result = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "srun" not in result.stderr
