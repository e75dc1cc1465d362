"""What one engine's run measured, as data that survives a JSON file.

Each engine's part of the benchmark runs on its own (it holds the engine for minutes only)
and writes one results file; the report merges the files. So everything the report
needs is here, and nothing here needs an engine.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

MODES = {
    "floor": "wheels in the build context, pip install --no-index",
    "direct": "no orchestrator: pip straight to the upstream",
    "proxy cold": "orchestrate build through the proxy, its cache just emptied",
    "proxy warm": "orchestrate build through that proxy, second build",
    "proxy warm line": "proxy warm's docker buildx build line alone, no orchestrate",
    "proxy fresh runner": "orchestrate build through that warm proxy, pip's cache emptied "
    "(a new CI runner: the proxy is the cache host's, the runner has nothing)",
    "fallback cold": "orchestrate build --no-proxy, new (empty) cache mount",
    "fallback warm": "orchestrate build --no-proxy, that cache mount, second build",
    "fallback warm line": "fallback warm's docker buildx build line alone, no orchestrate",
}


@dataclass
class Sample:
    """One timed build command and what it pulled from the upstream."""

    seconds: float
    ok: bool
    file_bytes: int = 0  # wheel bytes the upstream sent (GET /files/..., 200)
    file_gets: int = 0
    other_bytes: int = 0  # index pages, redirects, HEADs, 304s
    other_requests: int = 0
    install_step: float | None = None  # BuildKit's own time for the pip RUN step
    pip_start: float | None = None  # from the step's start to pip's first line
    pip_fetch: float | None = None  # resolving and getting the wheels (to "Installing")
    pip_install: float | None = None  # unpacking them (to "Successfully installed")
    export_step: float | None = None  # BuildKit's "exporting to image"
    log: str = ""


@dataclass
class ModeResult:
    mode: str
    description: str
    samples: list[Sample] = field(default_factory=list)
    layer_bytes: int | None = None  # size of the install layer in the image

    @property
    def times(self) -> list[float]:
        return [s.seconds for s in self.samples if s.ok]

    @property
    def failures(self) -> int:
        return sum(not s.ok for s in self.samples)

    def median(self, attribute: str = "seconds") -> float | None:
        """Median of one attribute over the successful samples that have it."""
        values = [getattr(s, attribute) for s in self.samples if s.ok]
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None


@dataclass
class ParallelResult:
    builds: int
    wall: float
    failures: int
    file_bytes: int
    file_gets: int
    per_file: dict[str, int]
    ideal_bytes: int
    proxy_peak_usage: int
    proxy_peak_anon: int
    proxy_kernel_peak: int | None
    slowest_build: float
    logs: list[str]
    proxy: str = "cold"  # cold: a new proxy; warm: the same proxy again, holding every file


@dataclass
class Timings:
    """Repeated measurements of one thing, in seconds."""

    name: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass
class Results:
    """One engine's run: its facts, the modes, the overhead, the parallel builds."""

    started: float
    facts: dict[str, Any]
    modes: dict[str, ModeResult] = field(default_factory=dict)
    parallel: list[ParallelResult] = field(default_factory=list)
    timings: dict[str, Timings] = field(default_factory=dict)
    finished: float = 0.0

    @property
    def engine(self) -> str:
        """``stock`` or ``current``: which of scripts/engines' engines ran it."""
        return str(self.facts.get("engine_name", "?"))

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Results:
        data = json.loads(text)
        return cls(
            started=data["started"],
            facts=data["facts"],
            modes={
                key: ModeResult(
                    mode["mode"],
                    mode["description"],
                    [Sample(**sample) for sample in mode["samples"]],
                    mode["layer_bytes"],
                )
                for key, mode in data["modes"].items()
            },
            parallel=[ParallelResult(**par) for par in data["parallel"]],
            timings={key: Timings(**timing) for key, timing in data["timings"].items()},
            finished=data["finished"],
        )
