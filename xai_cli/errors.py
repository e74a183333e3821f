"""The one exception type that means "the user asked for something we cannot do", shown as one line."""

from contextlib import contextmanager
from typing import Iterator

from omegaconf.errors import InterpolationResolutionError


class UserError(Exception):
    """Bad input (missing dataset, unknown option, wrong value): the CLI prints the message, no traceback."""


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError an exception was raised from, if any: Hydra's instantiate re-raises what a constructor
    raised as an InstantiationException (`raise ... from`), which would otherwise hide a one-line message
    behind a traceback. Only explicit causes count (an error raised while handling another is its own), but
    for OmegaConf's resolution errors, which re-raise what a resolver raised while handling it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        following = current.__cause__
        if following is None and isinstance(current, InterpolationResolutionError):
            following = current.__context__
        current = following
    return None


@contextmanager
def user_errors_unwrapped() -> Iterator[None]:
    """Re-raise the UserError behind whatever Hydra or OmegaConf wrapped it in, as itself; other errors pass
    through unchanged."""
    try:
        yield
    except Exception as exc:
        wrapped = user_error_in(exc)
        if wrapped is None:
            raise
        raise wrapped from None


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line ("" if it has none): what a one-line error quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
