"""The one exception type that means "the user asked for something we cannot do", shown as one line."""


class UserError(Exception):
    """Bad input (missing dataset, unknown option, wrong value): the CLI prints the message, no traceback."""


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError an exception wraps, if any: Hydra's instantiate re-raises what a constructor raised as
    an InstantiationException, which would otherwise hide a one-line message behind a traceback."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
