"""Helpers for the outage tests: what a build decided, what the front and proxpi served.

Measurements (decision times, downloads, rounds) are appended as JSON lines to the file named
by ``ORCHESTRATE_MEASUREMENTS`` when it is set, so a run can report its figures per engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from python_on_whales import docker
from python_on_whales.exceptions import NoSuchContainer

from devsupport.upstream_container import json_lines
from orchestrator.proxy import accesslog

# Light steps: pip into a target directory (no venv to create, no PEP 668 refusal), then an
# import that proves the packages are whole.
INSTALL_DOCKERFILE = textwrap.dedent("""\
    ARG BASE_IMAGE=python:3.12-slim
    FROM ${{BASE_IMAGE}}
    RUN python3 -m pip install --disable-pip-version-check --target /opt/pkgs {packages} \\
     && PYTHONPATH=/opt/pkgs python3 -c "import {modules}"
    """)
DECISION_BOUND = 1.0  # seconds: deciding between proxy, offline and fallback


def install_dockerfile(*projects: str) -> str:
    modules = ", ".join(p.replace("-", "_") for p in projects)
    return INSTALL_DOCKERFILE.format(packages=" ".join(projects), modules=modules)


def measure(kind: str, **values: Any) -> None:
    """Record one measurement with the engine it was made on."""
    target = os.environ.get("ORCHESTRATE_MEASUREMENTS")
    if not target:
        return
    record = {"kind": kind, "engine": engine_version(), "at": time.time(), **values}
    with open(target, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


_engine: list[str] = []


def engine_version() -> str:
    if not _engine:
        _engine.append(str(docker.version().server.version))  # type: ignore[union-attr]
    return _engine[0]


def records(result: subprocess.CompletedProcess[str], event: str) -> list[dict[str, Any]]:
    return [r for r in json_lines(result.stderr) if r.get("event") == event]


def decision(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The build's `proxy decided` debug line (it needs -v)."""
    found = records(result, "proxy decided")
    assert len(found) == 1, result.stderr[-3000:]
    return found[0]


def mode(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The mode the build ran in, and why (its `built` line, or with -v its `build` line)."""
    found = records(result, "built") or records(result, "build")
    assert found, result.stderr[-3000:]
    return str(found[0]["mode"]), str(found[0]["reason"])


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [str(r["message"]) for r in records(result, "error")]


def front_position(host_url: str) -> int:
    position = accesslog.size(host_url)
    assert position is not None, "the front serves its access log"
    return position


def front_span(host_url: str, since: int) -> accesslog.Span:
    span = accesslog.read(host_url, since)
    assert span is not None, "the front serves its access log"
    return span


@dataclass
class ProxpiLog:
    """proxpi's own access log (gunicorn's lines in `docker logs`), from a moment on.

    Lines are told by the engine's timestamps, not counted: a restarted container keeps
    its earlier lines, a recreated one starts a new log."""

    name: str
    since: float = field(default_factory=time.time)

    def mark(self) -> None:
        self.since = time.time()

    def package_requests(self) -> list[str]:
        """Lines for index pages or files since the mark: requests proxpi could send on."""
        try:
            text = str(docker.container.logs(self.name, timestamps=True))
        except NoSuchContainer:
            return []
        found = []
        for line in text.splitlines():
            stamp, _, rest = line.partition(" ")
            if _epoch(stamp) < self.since:
                continue
            if '"GET /index/' in rest or '"HEAD /index/' in rest:
                found.append(rest)
        return found


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of Docker's RFC 3339 timestamp (nanoseconds cut to micro)."""
    day, _, clock = stamp.rstrip("Z").partition("T")
    whole, _, fraction = clock.partition(".")
    moment = datetime.fromisoformat(f"{day}T{whole}+00:00")
    return moment.timestamp() + float(f"0.{fraction or '0'}")
