"""Logging: configured once at the entry point; modules only call ``get_logger``.

structlog costs about 0.1 s to import, more than orchestrator's whole overhead budget
for a build, so it is imported on the first event that passes the level filter, not
before: a build that logs nothing at the chosen level never imports it.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

LogFormat = Literal["auto", "console", "json"]
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class _Settings:
    log_format: LogFormat = "auto"
    threshold: int = _LEVELS["info"]
    configured: bool = False


_settings = _Settings()


def configure(log_format: LogFormat = "auto", *, verbose: bool = False) -> None:
    """Lines for people unless JSON is asked for: a CI log is read by people too, and a
    program that wants JSON lines says so (``--log-format json``)."""
    _settings.log_format = log_format
    _settings.threshold = _LEVELS["debug" if verbose else "info"]
    _settings.configured = False


def uses_json() -> bool:
    """Only when asked: guessing from stderr turned every CI log into JSON (issue 19)."""
    return _settings.log_format == "json"


def say(event: str, message: str, *, level: str = "info", **fields: object) -> None:
    """One of the command's own lines on stderr (an error, what a build did): plain text,
    or a JSON object where logs are JSON lines. It needs no structlog, so a build whose
    plan was remembered reports without importing it."""
    import json  # noqa: PLC0415

    if uses_json():
        record = {"level": level, "event": event, "message": message, **fields}
        sys.stderr.write(json.dumps(record, default=str) + "\n")
    else:
        sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def enabled(level: str) -> bool:
    return _LEVELS[level] >= _settings.threshold


def _structlog() -> Any:
    import structlog  # noqa: PLC0415 - deferred on purpose, see the module docstring

    if not _settings.configured:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                _renderer(structlog),
            ],
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
        _settings.configured = True
    return structlog


def _renderer(structlog: Any) -> Any:
    """JSON when asked; structlog's coloured console on a terminal; elsewhere (a CI log, a
    file) ``plain_line``, whose lines hold no colour codes and no padding."""
    if uses_json():
        return structlog.processors.JSONRenderer()
    if sys.stderr.isatty():
        return structlog.dev.ConsoleRenderer(colors=True)
    return plain_line


def plain_line(logger: object, method: str, event_dict: dict[str, Any]) -> str:
    """``orchestrate: LEVEL: EVENT key=value ...``: one line a person reads in a CI log,
    prefixed as the command's other lines are. A value of several lines (a traceback,
    Docker's own words at -v) follows the line, indented, rather than escaped into it."""
    fields = {k: v for k, v in event_dict.items() if k not in ("level", "event", "timestamp")}
    blocks = {k: v for k, v in fields.items() if isinstance(v, str) and "\n" in v.strip()}
    words = [f"{key}={_word(value)}" for key, value in fields.items() if key not in blocks]
    level = event_dict.get("level", method)
    head = " ".join([f"orchestrate: {level}: {event_dict.get('event', '')}", *words])
    return "\n".join([head, *(_block(key, text) for key, text in blocks.items())])


def _word(value: object) -> str:
    """A value as one word: a text quoted (JSON's escapes, so no control character gets
    through) when it has spaces, quotes or control characters or is empty; a list or a
    mapping as compact JSON."""
    import json  # noqa: PLC0415

    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    text = value if isinstance(value, str) else str(value)
    if not text or any(not c.isprintable() or c in " \"'=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _block(key: str, text: str) -> str:
    lines = text.strip("\n").splitlines()
    return "\n".join([f"  {key}:", *(f"    {line}" for line in lines)])


class Logger:
    """A named logger whose events below the configured level cost nothing."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if enabled(level):
            getattr(_structlog().get_logger(self.name), level)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)
