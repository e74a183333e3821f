"""Progress in a terminal (one live display for every nested loop) and without one (plain lines)."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from rich.console import Console
from rich.progress import Progress
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import FAST, compose_config, only_run_dir, xai_command, xai_env
from xai_cli.explainers.perturbation import KernelShapExplainer
from xai_cli.training import trainer as trainer_module
from xai_cli.training.trainer import FitBar, build_trainer
from xai_cli.utils import progress
from xai_cli.utils.job_logging import Console as ConsoleHandler
from xai_cli.utils.progress import progress_bar, snake_case, track


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """As if a person watched a terminal: the live display draws into the returned buffer."""
    screen = io.StringIO()
    monkeypatch.setattr(progress, "interactive", lambda: True)
    monkeypatch.setattr(progress._Display, "console", classmethod(lambda cls: Console(file=screen, force_terminal=True,
                                                                                      width=120)))
    return screen


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g)),
                      batch_size=8)


def test_nested_loops_are_tasks_of_one_live_display(terminal: io.StringIO) -> None:
    seen = []
    for a in track(range(2), "models"):
        for b in track(range(3), "images"):
            with progress_bar("batches", 4) as advance:
                assert progress._Display.tasks == 3  # three bars on the one display, nothing started twice
                advance(4, description="batches (done)")
            seen.append((a, b))
    assert seen == [(a, b) for a in range(2) for b in range(3)]
    assert progress._Display.progress is None and progress._Display.tasks == 0  # stopped with the last task
    assert "models" in terminal.getvalue() and "images" in terminal.getvalue()


def test_a_loop_that_ends_between_two_refreshes_still_shows_its_last_state(terminal: io.StringIO) -> None:
    """A one-epoch fit can end before the display's next auto-refresh; its bar was then never drawn."""
    with progress_bar("outer", 1):
        with progress_bar("fit", 3) as advance:
            advance(3, description="fit epoch 1/1  loss 0.123")
    assert "fit epoch 1/1  loss 0.123" in terminal.getvalue()


def test_a_fit_inside_a_loop_draws_on_the_same_display(terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer an analysis builds in a terminal: Lightning's own rich bar started a second live display
    inside ours, and the run crashed when the outer loop ended (IndexError: pop from empty list)."""
    monkeypatch.setattr(trainer_module, "interactive", lambda: True)
    descriptions: list[str] = []
    update = Progress.update
    monkeypatch.setattr(Progress, "update", lambda self, task, **kw: descriptions.append(kw.get("description", ""))
                        or update(self, task, **kw))
    cfg = compose_config("train", FAST).trainer
    trainer = build_trainer(cfg, 2, "tiny", max_epochs=2, limit_val_batches=0)
    assert trainer.progress_bar_callback is None
    assert any(isinstance(c, FitBar) for c in trainer.callbacks)
    for _ in track(range(2), "copies"):
        build_trainer(cfg, 2, "tiny", max_epochs=2, limit_val_batches=0, limit_train_batches=1.0).fit(_Tiny(), _loader())
    assert progress._Display.progress is None
    # the bar's description follows the epochs and the loss, 4 batches an epoch
    descriptions = [d for d in descriptions if d]  # advances without a new description
    assert [d.split("  ")[0] for d in descriptions] == ["tiny epoch 1/2"] * 4 + ["tiny epoch 2/2"] * 4 + [
        "tiny epoch 1/2"] * 4 + ["tiny epoch 2/2"] * 4
    assert all(d.split("  ")[1].startswith("loss ") for d in descriptions)


def test_without_a_terminal_the_outer_loop_logs_quarters_and_nested_ones_stay_quiet(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="xai")
    for _ in track(range(8), "outer"):
        for _ in track(range(4), "inner"):
            pass
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "outer: started (8 steps)" and lines[-1].startswith("outer: done in")
    assert [line.split(" (")[0] for line in lines[1:-1]] == ["outer: 2/8", "outer: 4/8", "outer: 6/8"]
    assert not any(line.startswith("inner") for line in lines)


def test_a_long_nested_loop_logs_its_quarters(caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="xai")
    monkeypatch.setattr(progress, "NESTED_QUIET_S", 0.05)
    for _ in track(range(1), "outer"):
        for _ in track(range(4), "kernel_shap: images"):
            time.sleep(0.03)
    inner = [r.getMessage() for r in caplog.records if r.getMessage().startswith("kernel_shap")]
    # the first quarter came before the loop had run long enough; the later ones and the end are logged
    assert [line.split(" (")[0] for line in inner[:-1]] == ["kernel_shap: images: 2/4", "kernel_shap: images: 3/4"]
    assert inner[-1].startswith("kernel_shap: images: done in")


def test_a_loop_left_early_closes_its_bar(terminal: io.StringIO) -> None:
    for i in track(range(10), "stops"):
        if i == 2:
            break
    assert progress._Display.progress is None and progress._Display.tasks == 0


def test_a_per_image_explainer_shows_its_images(terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    descriptions: list[str] = []
    real = progress._Display.add
    monkeypatch.setattr(progress._Display, "add", classmethod(
        lambda cls, description, total: descriptions.append(f"{description} {total}") or real(description, total)))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(3, 1, 8, 8)
    maps = KernelShapExplainer(n_samples=50, n_segments=4, batch_size=8).explain(net, x, torch.tensor([0, 1, 2]))
    assert maps.shape == (3, 8, 8) and descriptions == ["kernel_shap: images 3"]


def test_class_names_read_as_configs_spell_them() -> None:
    assert snake_case("KernelShapExplainer") == "kernel_shap"
    assert snake_case("IntegratedGradientsExplainer") == "integrated_gradients"
    assert snake_case("LimeExplainer") == "lime"


def test_the_console_handler_writes_to_stderr_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A live display swaps in its own stderr, which prints lines above the bars; a handler holding the
    stream it was made with writes through them."""
    handler = ConsoleHandler()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    handler.emit(logging.LogRecord("xai", logging.INFO, __file__, 1, "a line", None, None))
    assert later.getvalue() == "a line\n"


@pytest.mark.slow
def test_consistency_in_a_terminal_runs_to_its_report(tmp_path: Path) -> None:
    """The real executable on a pseudo-terminal: copies trained and explained inside nested bars."""
    controller, terminal_end = pty.openpty()
    env = xai_env(tmp_path)
    env.pop("CI")
    env.update(TERM="xterm", COLUMNS="120")
    process = subprocess.Popen([*xai_command(), "consistency", *FAST, "classifiers=[small_cnn]",
                                "explainers=[saliency]", "consistency.n_per_class=2"],
                               cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=terminal_end,
                               stderr=terminal_end)
    os.close(terminal_end)
    screen = b""
    while True:  # drain the terminal, or the child blocks on a full one
        ready, _, _ = select.select([controller], [], [], 300)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        screen += chunk
    code = process.wait(timeout=60)
    os.close(controller)
    text = screen.decode(errors="replace")
    assert code == 0, text[-3000:]
    assert "small_cnn epoch 1/1" in text and "copies" in text  # bars were drawn
    assert (only_run_dir(tmp_path, "consistency") / "report.html").is_file()
