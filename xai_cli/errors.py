"""The one exception type that means "the user asked for something we cannot do", shown as one line."""


class UserError(Exception):
    """Bad input (missing dataset, unknown option, wrong value): the CLI prints the message, no traceback."""
