"""The `orchestrate` command: a thin shell over profiles, planning and execution.

The parser is built from data (``parser``); each command's handler lives in a module of
its own, imported only when that command runs, so `orchestrate --version` and a build's
start-up pay for nothing they do not use. Handled errors become one line on stderr and a
documented exit code (see the README); ``-v`` adds Docker's own words and the traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from orchestrator.engine.api import DockerEngine, Engine, using
from orchestrator.errors import ExitCode, HandledError
from orchestrator.log import LogFormat


class _Session:
    verbose = False


_session = _Session()


def main(argv: Sequence[str] | None = None, *, engine: Engine | None = None) -> None:
    """Entry point: run one command, and turn its ending into an exit code.

    ``engine``: what every Docker call goes through (``engine.api``); the real engine
    unless a test hands in its fake."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with using(engine if engine is not None else DockerEngine()):
            code = _run(args)
    except HandledError as exc:
        code = _report(exc)
    except KeyboardInterrupt:
        print_error("interrupted", int(ExitCode.INTERRUPTED))
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        code = _closed_pipe()
    sys.exit(int(code))


def _run(args: list[str]) -> int:
    from orchestrator.cli.parser import build_parser  # noqa: PLC0415
    from orchestrator.log import configure  # noqa: PLC0415

    configure(_early_format(args))  # so that a usage error is reported in the chosen format
    options = build_parser(args).parse_args(args)
    configure(options.log_format, verbose=options.verbose)
    _session.verbose = options.verbose
    module_name, _, function = options.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function)
    result = handler(options)
    sys.stdout.flush()
    return int(result or 0)


def _early_format(args: list[str]) -> LogFormat:
    """The last --log-format before a `--` (after it, words are a command's), as the
    parser will take it: before the command's name or after it."""
    words = args[: args.index("--")] if "--" in args else args
    found: LogFormat = "auto"
    for index, word in enumerate(words):
        value = word.removeprefix("--log-format=") if word.startswith("--log-format=") else None
        if word == "--log-format" and index + 1 < len(words):
            value = words[index + 1]
        if value in ("auto", "console", "json"):
            found = value  # type: ignore[assignment]
    return found


def print_error(message: str, exit_code: int) -> None:
    """One line: plain, or a JSON object where logs are JSON lines."""
    from orchestrator import log  # noqa: PLC0415

    line = f"orchestrate: error: {message}"
    log.say("error", line, level="error", exit_code=exit_code)


def _report(exc: HandledError) -> int:
    """The handled error's line; with -v, Docker's own words and the traceback first."""
    from orchestrator import log  # noqa: PLC0415
    from orchestrator.urls import redact  # noqa: PLC0415

    if _session.verbose:
        import traceback  # noqa: PLC0415

        trace = "".join(traceback.format_exception(exc))
        log.get_logger("orchestrator.cli").debug(
            "handled error", detail=redact(exc.detail), traceback=redact(trace)
        )
    print_error(redact(exc.message), int(exc.exit_code))
    return int(exc.exit_code)


def _closed_pipe() -> int:
    """The reader went away (`orchestrate profiles list | head -1`): end quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
    return int(ExitCode.BROKEN_PIPE)
