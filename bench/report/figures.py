"""The figures the tables and the chart show, computed from one engine's results."""

from __future__ import annotations

import statistics

from bench.model import MODES, ModeResult, Results

MODE_ORDER = tuple(MODES)
MB = 1e6


def s(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MB:.1f}"


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"


def seconds(value: float) -> str:
    return f"{value:.4f}" if value < 0.01 else f"{value:.3f}"


def median_of(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def files_bytes(mode: ModeResult) -> float | None:
    return median_of([float(x.file_bytes) for x in mode.samples])


def other(mode: ModeResult) -> tuple[float | None, float | None]:
    """Median count and bytes of the upstream requests that were not wheel downloads."""
    requests = median_of([float(x.other_requests) for x in mode.samples])
    size = median_of([float(x.other_bytes) for x in mode.samples])
    return requests, size


def rest(mode: ModeResult) -> float | None:
    """Median time of a build command outside BuildKit's pip and export steps."""
    return median_of(
        [
            x.seconds - x.install_step - x.export_step
            for x in mode.samples
            if x.ok and x.install_step is not None and x.export_step is not None
        ]
    )


def vs_floor(results: Results, key: str) -> float | None:
    return ratio(results.modes[key].median(), results.modes["floor"].median())


def gap(results: Results, slower: str, faster: str) -> float | None:
    """Median of one timing minus median of another, when both were measured."""
    first, second = results.timings.get(slower), results.timings.get(faster)
    if first is None or second is None:
        return None
    return first.median - second.median


def overhead(results: Results) -> float | None:
    return gap(results, "orchestrate build (cached)", "raw build (cached)")


def startup(results: Results) -> float | None:
    version = results.timings.get("orchestrate --version")
    return version.median if version else None
