"""BuildKit's own timings of one build, from its progress output.

Where buildx has it (``--progress=rawjson``), the output is BuildKit's status stream as
JSON: every vertex with its start and end, every log chunk with its timestamp, to the
nanosecond. Older buildx (0.13, the stock engine's) has only ``plain``, whose lines this
module reads as a fallback: ``#N DONE 7.3s`` (tenths of a second) and ``#N 0.512 text``
(seconds since the step started).

Pure functions of text: unit-tested without an engine.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["rawjson", "plain"]

# pip's own lines that bound its phases: the first thing it prints, the end of resolving
# and downloading, the end of installing.
PIP_MARKS = ("Looking in ", "Installing collected", "Successfully installed")
INSTALL_STEP = "pip install"  # in the name of the RUN step that installs
EXPORT_STEP = "exporting to image"

_STEP = re.compile(r"^#(\d+) (.*)$")
_DONE = re.compile(r"^#(\d+) DONE ([0-9.]+)s$")
_PIP_LINE = re.compile(r"^#(\d+) ([0-9.]+) (.*)$")
_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True)
class StepTimes:
    """Durations in seconds; None where the output did not show them."""

    install: float | None = None
    export: float | None = None
    pip_start: float | None = None
    pip_fetch: float | None = None
    pip_install: float | None = None


def lines_of(text: str) -> Iterator[str]:
    """The build's own lines: orchestrate's JSON log events carry them in ``line``."""
    for raw in text.splitlines():
        if raw.startswith('{"event"'):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if record.get("event") == "output":
                yield str(record.get("line", "")).rstrip("\n")
            continue
        yield raw


def parse(text: str, kind: Kind) -> StepTimes:
    lines = list(lines_of(text))
    return parse_rawjson(lines) if kind == "rawjson" else parse_plain(lines)


# --- rawjson -------------------------------------------------------------------------------


def timestamp(text: str) -> float:
    """RFC 3339 with up to nine fractional digits (Go's), as epoch seconds."""
    trimmed = _FRACTION.sub(lambda m: "." + m.group(1)[:6], text.replace("Z", "+00:00"), 1)
    return datetime.datetime.fromisoformat(trimmed).timestamp()


@dataclass
class _Vertex:
    name: str = ""
    started: float | None = None
    completed: float | None = None
    cached: bool = False


def _statuses(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def parse_rawjson(lines: Iterable[str]) -> StepTimes:
    """Step durations from vertices' start and end; pip's phases from its log chunks."""
    vertices: dict[str, _Vertex] = {}
    chunks: list[tuple[str, float, str]] = []
    for status in _statuses(lines):
        for item in status.get("vertexes") or []:
            vertex = vertices.setdefault(str(item.get("digest")), _Vertex())
            vertex.name = str(item.get("name") or vertex.name)
            vertex.cached = bool(item.get("cached")) or vertex.cached
            if item.get("started"):
                vertex.started = timestamp(str(item["started"]))
            if item.get("completed"):
                vertex.completed = timestamp(str(item["completed"]))
        for log in status.get("logs") or []:
            data = base64.b64decode(str(log.get("data") or "")).decode("utf-8", "replace")
            chunks.append((str(log.get("vertex")), timestamp(str(log["timestamp"])), data))
    install = _find(vertices, INSTALL_STEP)
    export = _find(vertices, EXPORT_STEP)
    marks: dict[str, float] = {}
    if install is not None:
        digest, vertex = install
        for owner, stamp, data in chunks:
            for line in data.splitlines() if owner == digest else []:
                _mark(marks, line, stamp - (vertex.started or stamp))
    return StepTimes(_duration(install), _duration(export), *_phases(marks))


def _find(vertices: dict[str, _Vertex], needle: str) -> tuple[str, _Vertex] | None:
    for digest, vertex in vertices.items():
        if needle in vertex.name and not vertex.cached:
            return digest, vertex
    return None


def _duration(found: tuple[str, _Vertex] | None) -> float | None:
    if found is None or found[1].started is None or found[1].completed is None:
        return None
    return found[1].completed - found[1].started


# --- plain ---------------------------------------------------------------------------------


def parse_plain(lines: Iterable[str]) -> StepTimes:
    """The same from plain progress: step titles, ``DONE`` lines, timed log lines."""
    titles: dict[str, str] = {}
    done: dict[str, float] = {}
    logged: list[tuple[str, float, str]] = []
    for line in lines:
        finished = _DONE.match(line)
        if finished:
            done[finished.group(1)] = float(finished.group(2))
            continue
        timed = _PIP_LINE.match(line)
        if timed:
            logged.append((timed.group(1), float(timed.group(2)), timed.group(3)))
            continue
        step = _STEP.match(line)
        if step and step.group(1) not in titles:
            titles[step.group(1)] = step.group(2)
    install = next((n for n, t in titles.items() if INSTALL_STEP in t and n in done), None)
    export = next((n for n, t in titles.items() if t.startswith(EXPORT_STEP) and n in done), None)
    marks: dict[str, float] = {}
    for number, seconds, text in logged:
        if number == install:
            _mark(marks, text, seconds)
    return StepTimes(
        done.get(install or ""),
        done.get(export or ""),
        *_phases(marks),
    )


# --- pip's phases --------------------------------------------------------------------------


def _mark(marks: dict[str, float], line: str, seconds: float) -> None:
    for mark in PIP_MARKS:
        if line.startswith(mark) and mark not in marks:
            marks[mark] = seconds


def _phases(marks: dict[str, float]) -> tuple[float | None, float | None, float | None]:
    """(start, fetch, install): to pip's first line, to "Installing", to the end."""
    looking, installing, done = (marks.get(mark) for mark in PIP_MARKS)
    if looking is None or installing is None or done is None:
        return None, None, None
    return looking, installing - looking, done - installing
