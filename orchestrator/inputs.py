"""The user's inputs: their files' text, and what a profile needs of the environment, or
the one line that says why it cannot be had.

The environment is checked twice on purpose: before anything is created
(``facts.host.check_inputs``), and by planning, which may be handed facts without that
check; the words are written here once. Imports nothing heavy: the remembered path uses it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import BadInput


def read_text(path: Path, what: str) -> str:
    """A file's text, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the {what}: {exc.strerror}") from None


def unset_variable(where: str, field: str, variable: str) -> BadInput:
    """A profile field names an environment variable that is not set."""
    return BadInput(f"{where}: field '{field}': environment variable {variable} is not set")


def no_agent(where: str) -> BadInput:
    """``ssh: true`` with no ssh-agent to forward."""
    return BadInput(
        f"{where}: field 'ssh' is true but no ssh-agent socket was found: start one "
        "(eval $(ssh-agent); ssh-add) so SSH_AUTH_SOCK is set"
    )
