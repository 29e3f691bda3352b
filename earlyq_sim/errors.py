"""User-facing errors.

Anything the user can fix (a bad flag, a malformed YAML, a missing checkpoint) is raised as
:class:`UserError` with a one-line message naming the file, field and allowed values. The CLI
prints it and exits with code 2, without a traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message is one line and says how to fix it."""

    exit_code = 2


def read_yaml(path) -> object:
    """Parse a YAML file; a syntax error is a one-line UserError naming the file and line."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
