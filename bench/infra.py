"""What the benchmark creates on the engine, and the guarantee that all of it goes away.

Every container, volume and network is named ``orchestrator-bench-<run>-...``, every image
is tagged ``orchestrator-bench/...``, and every build cache record the runs make names
``/opt/orchestrator-bench`` or the run's cache namespace in its description. ``Cleanup``
removes exactly that, on success, on failure and on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench import engine
from bench.cli import Orchestrate
from bench.fixtures import MARKER, Fixtures
from devsupport.upstream_container import Upstream

PREFIX = MARKER  # orchestrator-bench
IMAGE_REPO = f"{MARKER}"  # images: orchestrator-bench/<what>:<tag>
LABEL = "io.orchestrator.bench"
TC = shutil.which("tc") or "/usr/sbin/tc"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Cleanup:
    """Tracks what one run made; ``close()`` removes it, whatever happened before."""

    run_id: str
    orchestrate: Orchestrate | None = None
    proxy_profiles: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def prefix(self) -> str:
        return f"{PREFIX}-{self.run_id}"

    def start(self) -> None:
        signal.signal(signal.SIGTERM, _terminate)
        sweep_leftovers()

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish cleaning first
        try:
            self._close()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _close(self) -> None:
        print(f"bench: cleaning up {self.prefix}-*", file=sys.stderr)
        running = self.orchestrate.running if self.orchestrate else []
        for process in running:
            _signal_group(process, signal.SIGTERM)
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            _signal_group(process, signal.SIGKILL)
        for profile in self.proxy_profiles:
            _best_effort(f"proxy down {profile}", self._proxy_down, profile)
        _best_effort("containers, volumes, networks", engine.remove_named, self.prefix)
        _best_effort("images", engine.remove_images, IMAGE_REPO, MARKER)
        _best_effort("build cache", self.prune_build_cache)

    def _proxy_down(self, profile: str) -> None:
        if self.orchestrate is not None:
            self.orchestrate.timed(
                f"cleanup-down-{profile}", "proxy", "down", "--purge", "--profile", profile
            )

    def prune_build_cache(self) -> None:
        """Remove the build cache records the benchmark made: every record whose description
        names it (its RUN steps, its cache mounts), and their descendants (COPY, WORKDIR)."""
        for _ in range(6):  # a parent record goes only once its children are gone
            records = engine.build_cache()
            ours = {
                r["ID"]
                for r in records
                if MARKER in r.get("Description", "") or self.prefix in r.get("Description", "")
            }
            grown = True
            while grown:
                children = {r["ID"] for r in records if r.get("Parent") in ours} - ours
                grown = bool(children)
                ours |= children
            if not ours:
                return
            engine.prune_cache(ours)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _best_effort(what: str, fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except Exception as exc:  # cleanup goes on and says what it could not do
        print(f"bench: cleanup of {what} incomplete: {exc}", file=sys.stderr)


def sweep_leftovers() -> None:
    """What an earlier run killed with SIGKILL left behind (names are ours by convention)."""
    engine.remove_named(f"{PREFIX}-")


# --- the shaped upstream --------------------------------------------------------------------


def create_network(name: str) -> None:
    engine.create_network(name, LABEL)


def shape(container: str, rate: str, *, burst: str = "64kb", latency: str = "400ms") -> str:
    """tbf on the container's eth0, from the host, in its network namespace (egress only).

    Everything the upstream sends (its files) leaves through it, to the proxy and to
    host-network builds alike; requests towards it are tiny and not shaped.
    """
    pid = str(engine.container_pid(container))
    base = [NSENTER, "-t", pid, "-n", TC, "qdisc"]
    subprocess.run(
        [
            *base,
            "replace",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            burst,
            "latency",
            latency,
        ],
        check=True,
        capture_output=True,
    )
    shown = subprocess.run(
        [*base, "show", "dev", "eth0"], check=True, capture_output=True, text=True
    ).stdout
    if "tbf" not in shown:
        raise RuntimeError(f"tc did not install tbf on {container}: {shown}")
    return shown.strip()


# --- memory of a container, sampled from its cgroup -----------------------------------------


def _cgroup_dir(container_id: str) -> tuple[Path, int] | None:
    for path, version in (
        (Path("/sys/fs/cgroup/memory/docker") / container_id, 1),
        (Path("/sys/fs/cgroup/system.slice") / f"docker-{container_id}.scope", 2),
        (Path("/sys/fs/cgroup/docker") / container_id, 2),
        # the remote engine's (scripts/engines: --cgroup-parent /orchestrator-remote)
        (Path("/sys/fs/cgroup/memory/orchestrator-remote") / container_id, 1),
        (Path("/sys/fs/cgroup/orchestrator-remote") / container_id, 2),
    ):
        if path.is_dir():
            return path, version
    return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stat_value(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


@dataclass
class MemoryPeak:
    """Peak memory of one container while a block runs, sampled every 50 ms."""

    container: str
    peak_usage: int = 0  # cgroup usage, page cache included
    peak_anon: int = 0  # without page cache: what the process itself holds
    kernel_peak: int | None = None  # the kernel's own high-water mark, when it keeps one
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def watch(self) -> Iterator[MemoryPeak]:
        full_id = engine.container_id(self.container)
        found = _cgroup_dir(full_id)
        thread = None
        if found is not None:
            thread = threading.Thread(target=self._sample, args=found, daemon=True)
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if thread is not None:
                thread.join(timeout=5)
            if found is not None:
                path, version = found
                name = "memory.max_usage_in_bytes" if version == 1 else "memory.peak"
                self.kernel_peak = _read_int(path / name)

    def _sample(self, path: Path, version: int) -> None:
        usage_file = path / ("memory.usage_in_bytes" if version == 1 else "memory.current")
        anon_key = "total_rss" if version == 1 else "anon"
        while not self._stop.is_set():
            usage = _read_int(usage_file) or 0
            anon = _stat_value(path / "memory.stat", anon_key) or 0
            self.peak_usage = max(self.peak_usage, usage)
            self.peak_anon = max(self.peak_anon, anon)
            self._stop.wait(0.05)


def link_rate(upstream: Upstream, fixtures: Fixtures, image: str) -> float:
    """Bytes per second of one big file pulled from the upstream through its shaped link,
    by a container beside it on the engine (the host cannot reach an engine's bridge in
    another network namespace)."""
    name = max(fixtures.files, key=lambda n: fixtures.files[n])
    url = f"{upstream.base_url_inside_network}/files/{name}"
    size, seconds = engine.fetch(image, upstream.network, [url])
    return size / seconds
