"""N builds at once: the floor's (the machine's limit: no proxy, no orchestrator), then
through one new proxy, cold and warm: failures, upstream bytes, proxy memory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.cli import BUILD_TIMEOUT
from bench.engine import BuildRun
from bench.fixtures import bust
from bench.infra import MemoryPeak
from bench.model import ParallelResult
from bench.session import Session


def parallel(session: Session, builds: int) -> list[ParallelResult]:
    """N floor builds at once, then N builds at once through a new proxy (cold), then
    again through it (warm), each with a context of its own and its own bust.txt, so
    BuildKit cannot merge them into one build. One build (N = 1) is the baseline the others
    are judged by, in the same run."""
    settings = session.proxy_settings(f"par{builds}")
    names, contexts = [], []
    for i in range(builds):
        context = session.fixtures.context_copy(f"par{builds}-{i}")
        contexts.append(context)
        names.append(session.profile(f"par{builds}-{i}", proxy=settings, context=context))
    found = [_floor_together(session, builds)]
    session.proxy_up(names[0])
    for phase in ("cold", "warm"):
        for context in contexts:
            bust(context)
        found.append(_together(session, settings, names, phase))
    session.proxy_down(names[0])
    return found


def _together(
    session: Session, settings: dict[str, object], names: list[str], phase: str
) -> ParallelResult:
    builds = len(names)
    session.upstream.mark()
    cli = session.orchestrate
    started_at: list[tuple[subprocess.Popen[bytes], Path, float]] = []
    ended: dict[int, float] = {}
    monitor = MemoryPeak(str(settings["name"]))
    with monitor.watch():
        started = time.perf_counter()
        for name in names:
            log = cli.log_path(name)
            process = cli.start(cli.argv("build", name), log)
            started_at.append((process, log, time.perf_counter()))
        deadline = started + BUILD_TIMEOUT
        while len(ended) < builds and time.perf_counter() < deadline:
            for index, (process, _, _) in enumerate(started_at):
                if index not in ended and process.poll() is not None:
                    ended[index] = time.perf_counter()
            time.sleep(0.05)
        wall = time.perf_counter() - started
    if len(ended) < builds:
        raise RuntimeError(f"{builds} parallel builds did not end in {BUILD_TIMEOUT:.0f} s")
    codes = [cli.finish(process) for process, _, _ in started_at]
    downloads = session.upstream.file_downloads()
    per_file = Counter(str(r["path"]).rsplit("/", 1)[-1] for r in downloads)
    slowest = max(ended[i] - t0 for i, (_, _, t0) in enumerate(started_at))
    result = ParallelResult(
        builds=builds,
        wall=wall,
        failures=sum(code != 0 for code in codes),
        file_bytes=sum(int(r["bytes"]) for r in downloads),
        file_gets=len(downloads),
        per_file=dict(per_file),
        ideal_bytes=session.fixtures.total_bytes,
        proxy_peak_usage=monitor.peak_usage,
        proxy_peak_anon=monitor.peak_anon,
        proxy_kernel_peak=monitor.kernel_peak,
        slowest_build=slowest,
        logs=[str(log) for _, log, _ in started_at],
        proxy=phase,
    )
    print(
        f"bench:   parallel x{builds:<3} {phase:<9} {wall:7.2f} s  upstream "
        f"{result.file_bytes / 1e6:6.1f} MB  failures {result.failures}",
        file=sys.stderr,
    )
    return result


def _floor_together(session: Session, builds: int) -> ParallelResult:
    """N floor builds at once (wheels in each context, ``pip install --no-index``): what
    this machine takes for N installs and exports with nothing fetched and nothing of
    orchestrator's, the limit any parallel build through the proxy is judged against.
    One untimed round first sends each new context's wheels to BuildKit."""
    fixtures = session.fixtures
    contexts = [
        fixtures.context_copy(f"par{builds}-floor-{i}", fixtures.floor_context)
        for i in range(builds)
    ]
    with ThreadPoolExecutor(builds) as pool:
        _floor_round(session, pool, contexts)
        started = time.perf_counter()
        runs = _floor_round(session, pool, contexts)
        wall = time.perf_counter() - started
    result = ParallelResult(
        builds=builds,
        wall=wall,
        failures=sum(not run.ok for run in runs),
        file_bytes=0,
        file_gets=0,
        per_file={},
        ideal_bytes=0,
        proxy_peak_usage=0,
        proxy_peak_anon=0,
        proxy_kernel_peak=None,
        slowest_build=max(run.seconds for run in runs),
        logs=[],
        proxy="floor",
    )
    print(
        f"bench:   parallel x{builds:<3} floor     {wall:7.2f} s  failures {result.failures}",
        file=sys.stderr,
    )
    return result


def _floor_round(
    session: Session, pool: ThreadPoolExecutor, contexts: list[Path]
) -> list[BuildRun]:
    for context in contexts:
        bust(context)
    return list(pool.map(lambda context: session.raw_build(context, context.name), contexts))
