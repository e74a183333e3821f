"""The `xai` command line: parses, forwards overrides to Hydra, and nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click
import typer
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from typer.core import TyperCommand

from xai_cli.errors import UserError
from xai_cli.utils.threads import prepare_environment

app = typer.Typer(
    name="xai",
    help="Train image classifiers and interrogate them. Every command takes Hydra overrides, "
    "e.g. `xai train dataset=mnist 'classifiers=[cnn,svm_rbf]' seed=1`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show Hydra list syntax such as [cnn,svm_rbf] literally
)

# Subcommands that run an analysis: name -> one-line help. Each has configs/<name>.yaml as primary config.
COMMANDS = {
    "train": "Train classifiers into the model store; report accuracy, size, training time and disagreement.",
    "explain": "Explain test images with every chosen method and model; measure faithfulness, stability, "
    "sanity and speed.",
    "discrepancy": "DIG-CV: find and show where models of similar accuracy disagree, searched in a β-VAE's "
    "latent space (or on raw features).",
    "consistency": "Agree to Disagree: do copies of one architecture, differing only in training randomness, "
    "explain the same images alike?",
    "uncertainty": "What makes the model uncertain? A GAN conditioned on class and on the classifier's "
    "confidence (MSP), evaluated on a grid of conditions.",
    "counterfactual": "The smallest realistic change that flips a decision: Wachter, prototype-guided and a "
    "learned latent actor.",
}

OVERRIDES_HELP = (
    "Hydra overrides, passed through verbatim: KEY=VALUE (seed=1), GROUP=OPTION (dataset=mnist), "
    "lists ('classifiers=[cnn,svm_rbf]'), sweeps with -m (seed=1,2,3), hydra.* settings "
    "(hydra.run.dir=out/x, hydra/launcher=joblib)."
)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class CommandWithSettings(TyperCommand):
    """Help that ends with the command's config groups and settings and their defaults, read when --help
    is asked for (never on a run)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from xai_cli.config import CONFIG_DIR
        from xai_cli.config_help import groups_help, settings_help

        with formatter.section("Config groups (GROUP=OPTION, the default shown)"):
            formatter.write_dl(groups_help(self.name or "", CONFIG_DIR))
        with formatter.section("Settings (KEY=VALUE, the default shown)"):
            formatter.write_dl(settings_help(self.name or "", CONFIG_DIR))
        formatter.write_paragraph()
        formatter.write_text(f"Every setting of the composed config: xai {self.name} --cfg job")


def _complete(command: str):
    def complete(incomplete: str) -> list[str]:
        from xai_cli.config import CONFIG_DIR
        from xai_cli.config_help import completions

        return completions(command, CONFIG_DIR, incomplete)

    return complete


def _make_command(name: str, help_text: str) -> None:
    @app.command(
        name,
        cls=CommandWithSettings,
        help=f"{help_text}\n\n{OVERRIDES_HELP}",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "max_content_width": 120},
        options_metavar="[-m] [--cfg job|hydra|all]",
    )
    def command(
        ctx: typer.Context,
        overrides: Optional[list[str]] = typer.Argument(None, metavar="OVERRIDES", show_default=False,
                                                        autocompletion=_complete(name)),
        multirun: bool = typer.Option(False, "--multirun", "-m", help="Run a sweep: one job per combination."),
        cfg: Optional[str] = typer.Option(None, "--cfg", "-c", help="Print the composed config (job|hydra|all) and exit."),
        resolve: bool = typer.Option(False, "--resolve", help="With --cfg: resolve interpolations."),
    ) -> None:
        from xai_cli.app import RunFailed, launch  # heavy imports only when a command really runs

        args = (["--multirun"] if multirun else []) + (["--cfg", cfg] if cfg else []) + (["--resolve"] if resolve else [])
        try:
            launch(name, args + list(overrides or []) + list(ctx.args))
        except UserError as exc:
            _fail(str(exc), 2)
        except RunFailed as exc:
            _fail(f"{exc} (details: {exc.detail})", 1)
        except (HydraException, OmegaConfBaseException) as exc:
            from xai_cli.app import CONFIG_DIR
            from xai_cli.config_check import describe_config_error

            _fail(describe_config_error(exc, CONFIG_DIR), 2)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # a bug of ours: still one line, the traceback on request
            if os.environ.get("XAI_DEBUG"):
                raise
            _fail(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
                  "(set XAI_DEBUG=1 for the traceback)", 1)


for _name, _help in COMMANDS.items():
    _make_command(_name, _help)


@app.command("report")
def report(run_dir: Path = typer.Argument(..., help="A run directory, or a multirun (sweep) directory.")) -> None:
    """Re-render a run's report.md/report.html from its metrics.json, or a sweep's summary table."""
    from xai_cli.report.rerender import rerender

    try:
        written = rerender(run_dir)
    except UserError as exc:
        _fail(str(exc), 2)
    typer.echo(f"wrote {written}")


def main() -> None:
    prepare_environment()
    app()


if __name__ == "__main__":
    main()
