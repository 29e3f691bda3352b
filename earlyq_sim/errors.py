"""User-facing errors.

Anything the user can fix (a bad flag, a malformed YAML, a missing checkpoint) is raised as
:class:`UserError` with a one-line message naming the file, field and allowed values. The CLI
prints it and exits with code 2, without a traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message is one line and says how to fix it."""

    exit_code = 2
