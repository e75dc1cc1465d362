"""Reading the user's files: their text, or one line that says why it cannot be had."""

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
