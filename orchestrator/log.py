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
    """Console output for people on a terminal, JSON lines for machines and CI."""
    _settings.log_format = log_format
    _settings.threshold = _LEVELS["debug" if verbose else "info"]
    _settings.configured = False


def uses_json() -> bool:
    fmt = _settings.log_format
    return fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())


def say(event: str, message: str, *, level: str = "info", **fields: object) -> None:
    """One of the command's own lines on stderr (an error, what a build did): plain text on
    a terminal, a JSON object where logs are JSON lines. It needs no structlog, so a
    build whose plan was remembered reports without importing it."""
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
        renderer: Any = (
            structlog.processors.JSONRenderer()
            if uses_json()
            else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        )
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                renderer,
            ],
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
        _settings.configured = True
    return structlog


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
