"""The measured modes: each rebuilds only the install layer of the reference image.

Every timed command is a whole build command (``docker buildx build ...`` or
``orchestrate build ...``) whose every other layer is cached: a new ``BENCH_BUST`` build
arg, declared right before the install step, is the only thing that changes between runs.
Upstream traffic is read from the upstream's own request log, between two marks.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.fixtures import Fixtures
from bench.infra import Cleanup, MemoryPeak, docker
from devsupport.upstream_container import Upstream, json_lines
from orchestrator.build import proxy_facts
from orchestrator.plan.model import BuildOptions
from orchestrator.profiles import ProfileStore

BASE_IMAGE = os.environ.get("ORCHESTRATE_BASE_IMAGE", "orchestrator/base:bookworm")
PROXY_IMAGE = "orchestrator/proxpi:1.3.1"
BUILD_TIMEOUT = 900.0

_STEP = re.compile(r"^#(\d+) (.*)$")
_DONE = re.compile(r"^#(\d+) DONE ([0-9.]+)s$")


@dataclass
class Sample:
    """One timed command and what it pulled from the upstream."""

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
        values = [getattr(s, attribute) for s in self.samples if s.ok]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None


MODES = {
    "floor": "wheels in the build context, pip install --no-index",
    "direct": "no orchestrator: pip straight to the upstream",
    "proxy cold": "orchestrate build through a new proxy, empty cache",
    "proxy warm": "orchestrate build through that proxy, second build",
    "fallback cold": "orchestrate build --no-proxy, new (empty) cache mount",
    "fallback warm": "orchestrate build --no-proxy, that cache mount, second build",
}


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
    started: float
    facts: dict[str, Any]
    modes: dict[str, ModeResult] = field(default_factory=dict)
    parallel: list[ParallelResult] = field(default_factory=list)
    timings: dict[str, Timings] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    finished: float = 0.0

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

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
            notes=data["notes"],
            finished=data["finished"],
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PIP_LINE = re.compile(r"^#\d+ ([0-9.]+) (Looking in |Installing collected|Successfully installed)")


def parse_pip(log: str) -> tuple[float | None, float | None, float | None]:
    """(start, fetch, install) inside the pip step, from BuildKit's per-line timestamps."""
    marks: dict[str, float] = {}
    for line in log.splitlines():
        found = _PIP_LINE.match(line)
        if found and found.group(2) not in marks:
            marks[found.group(2)] = float(found.group(1))
    looking = marks.get("Looking in ")
    installing = marks.get("Installing collected")
    done = marks.get("Successfully installed")
    if looking is None or installing is None or done is None:
        return None, None, None
    return looking, installing - looking, done - installing


def parse_steps(log: str) -> tuple[float | None, float | None]:
    """(install step, export step) durations from BuildKit's plain progress output."""
    titles: dict[str, str] = {}
    install = export = None
    for line in log.splitlines():
        done = _DONE.match(line)
        if done:
            title = titles.get(done.group(1), "")
            seconds = float(done.group(2))
            if "pip install" in title:
                install = seconds
            elif title.startswith("exporting to image"):
                export = seconds
            continue
        step = _STEP.match(line)
        if step and step.group(1) not in titles:
            titles[step.group(1)] = step.group(2)
    return install, export


class Runner:
    """Runs builds in one of the modes against one shaped upstream, and records samples."""

    def __init__(
        self,
        fixtures: Fixtures,
        upstream: Upstream,
        network: str,
        cleanup: Cleanup,
        workdir: Path,
    ) -> None:
        self.fixtures = fixtures
        self.upstream = upstream
        self.network = network
        self.cleanup = cleanup
        self.prefix = cleanup.prefix
        self.profiles = workdir / "profiles"
        self.logs = workdir / "logs"
        self.profiles.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "xdg")}
        self.orchestrate_bin = str(Path(sys.executable).with_name("orchestrate"))
        self._count = 0

    # --- commands ---------------------------------------------------------------------------

    def orchestrate(self, *args: str) -> list[str]:
        return [
            self.orchestrate_bin,
            "--log-format",
            "json",
            "--profiles-dir",
            str(self.profiles),
            *args,
        ]

    def run(
        self, argv: Sequence[str], name: str, env: dict[str, str] | None = None
    ) -> tuple[float, int, Path]:
        """Run a command with its output in a log file; (seconds, exit code, log)."""
        self._count += 1
        log = self.logs / f"{self._count:03d}-{name}.log"
        with log.open("wb") as out:
            out.write((shlex.join(argv) + "\n").encode())
            out.flush()
            started = time.perf_counter()
            process = self.cleanup.spawn(argv, out, env or self.env)
            # On Ctrl-C or a timeout the process stays listed, and the clean-up ends it.
            code = process.wait(timeout=BUILD_TIMEOUT)
            seconds = time.perf_counter() - started
            self.cleanup.processes.remove(process)
        return seconds, code, log

    def check(self, argv: Sequence[str], name: str) -> str:
        _, code, log = self.run(argv, name)
        text = log.read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"{name} failed (exit {code}), see {log}:\n{text[-3000:]}")
        return text

    def _offset(self) -> int:
        return len(self.upstream.all_requests(settle=False))

    def measured(self, argv: Sequence[str], name: str, env: dict[str, str] | None = None) -> Sample:
        # No settling: the last request of the previous build ended seconds ago, and the
        # install and export that follow a build's last download take seconds too.
        offset = self._offset()
        seconds, code, log = self.run(argv, name, env)
        requests = self.upstream.all_requests(settle=False)[offset:]
        files = [
            r
            for r in requests
            if r["method"] == "GET" and str(r["path"]).startswith("/files/") and r["status"] == 200
        ]
        text = log.read_text(errors="replace")
        install, export = parse_steps(text)
        start, fetch, unpack = parse_pip(text)
        sample = Sample(
            seconds=seconds,
            ok=code == 0,
            file_bytes=sum(int(r["bytes"]) for r in files),
            file_gets=len(files),
            other_bytes=sum(int(r["bytes"]) for r in requests if r not in files),
            other_requests=len(requests) - len(files),
            install_step=install,
            pip_start=start,
            pip_fetch=fetch,
            pip_install=unpack,
            export_step=export,
            log=str(log),
        )
        status = "ok" if sample.ok else f"FAILED (exit {code}, {log})"
        print(
            f"bench:   {name:<22} {seconds:7.2f} s  upstream {sample.file_bytes / 1e6:6.1f} MB"
            f"  {status}",
            file=sys.stderr,
        )
        return sample

    # --- what is built ----------------------------------------------------------------------

    def tag(self, what: str) -> str:
        return f"orchestrator-bench/{self.cleanup.run_id}:{what}"

    def raw_argv(self, context: Path, what: str, bust: str, *extra: str) -> list[str]:
        argv = ["docker", "buildx", "build", "--progress", "plain", "--network", "host"]
        argv += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"BENCH_BUST={bust}"]
        argv += [*extra, "--tag", self.tag(what), "--load", str(context)]
        return argv

    def direct_argv(self, what: str, bust: str) -> list[str]:
        url = self.upstream.host_url
        return self.raw_argv(
            self.fixtures.app_context,
            what,
            bust,
            "--build-arg",
            f"PIP_INDEX_URL={url}",
            "--build-arg",
            f"PIP_TRUSTED_HOST={self.upstream.ip}",
        )

    def proxy_settings(self, suffix: str) -> dict[str, Any]:
        return {
            "name": f"{self.prefix}-proxy-{suffix}",
            "network": self.network,
            "port": free_port(),
            "cache_volume": f"{self.prefix}-cache-{suffix}",
            "index": self.upstream.host_url,
            "health_project": "numpy",
            "ca_bundle": "off",
            "image": PROXY_IMAGE,
            "base_image": BASE_IMAGE,
            "startup_timeout": 120,
        }

    def profile(
        self,
        name: str,
        *,
        bust: str,
        proxy: dict[str, Any],
        namespace: str | None = None,
        target: str | None = None,
    ) -> str:
        data = {
            "description": f"benchmark build {name}",
            "context": str(self.fixtures.app_context),
            "tags": [self.tag(name)],
            "build_args": {"BASE_IMAGE": BASE_IMAGE, "BENCH_BUST": bust},
            "ca_bundle": "off",
            "user": {"name": "app", "uid": 1000, "gid": 1000},
            "network": "host",
            "progress": "plain",
            "cache_namespace": namespace or f"{self.prefix}-default",
            "proxy": proxy,
        }
        if target:
            data["target"] = target
        (self.profiles / f"{name}.yaml").write_text(json.dumps(data, indent=2))
        return name

    def proxy_up(self, profile: str) -> float:
        self.cleanup.proxy_profiles.append(profile)
        started = time.perf_counter()
        self.check(self.orchestrate("proxy", "up", "--profile", profile), f"up-{profile}")
        return time.perf_counter() - started

    def proxy_down(self, profile: str) -> None:
        self.check(
            self.orchestrate("proxy", "down", "--purge", "--profile", profile), f"down-{profile}"
        )
        if profile in self.cleanup.proxy_profiles:
            self.cleanup.proxy_profiles.remove(profile)

    def layer_bytes(self, what: str) -> int | None:
        """Size of the image's last layer (the install step)."""
        out = docker("history", "--no-trunc", "--format", "{{json .}}", self.tag(what), check=False)
        for line in out.splitlines():
            record = json.loads(line)
            return _size(str(record.get("Size", "")))
        return None

    # --- modes, one run of each per round -------------------------------------------------------

    def warm_up(self) -> None:
        """Build the layers below the install step once, for raw and orchestrated builds."""
        for context in (self.fixtures.floor_context, self.fixtures.app_context):
            self.check(
                self.raw_argv(context, f"warmup-{context.name}", "warmup", "--target", "base"),
                f"warmup-{context.name}",
            )
        # The floor's first full build sends the wheels in its context to BuildKit; later
        # builds send only what changed (nothing), as a user's repeated builds would.
        self.check(
            self.raw_argv(self.fixtures.floor_context, "warmup-full", _bust()), "warmup-full"
        )
        name = self.profile(
            "warmup", bust="warmup", proxy=self.proxy_settings("unused"), target="base"
        )
        self.check(self.orchestrate("build", "--no-proxy", name), "warmup-orchestrated")

    def round(self, index: int, results: dict[str, ModeResult], starts: Timings) -> str:
        """One run of every mode; returns the profile whose proxy is still up (warm)."""
        i = index
        results["floor"].samples.append(
            self.measured(
                self.raw_argv(self.fixtures.floor_context, f"floor-{i}", _bust()), f"floor-{i}"
            )
        )
        results["direct"].samples.append(
            self.measured(self.direct_argv(f"direct-{i}", _bust()), f"direct-{i}")
        )
        # A new proxy with an empty cache volume: its first build is cold, its second warm.
        settings = self.proxy_settings(f"p{i}")
        cold = self.profile(f"proxy-cold-{i}", bust=_bust(), proxy=settings)
        starts.values.append(self.proxy_up(cold))
        results["proxy cold"].samples.append(self.measured(self.orchestrate("build", cold), cold))
        warm = self.profile(f"proxy-warm-{i}", bust=_bust(), proxy=settings)
        results["proxy warm"].samples.append(self.measured(self.orchestrate("build", warm), warm))
        # A cache namespace never used before: the first build fills it, the second uses it.
        namespace = f"{self.prefix}-fb{i}"
        unused = self.proxy_settings("unused")
        for kind in ("cold", "warm"):
            name = self.profile(
                f"fallback-{kind}-{i}", bust=_bust(), proxy=unused, namespace=namespace
            )
            results[f"fallback {kind}"].samples.append(
                self.measured(self.orchestrate("build", "--no-proxy", name), name)
            )
        return cold

    def layers(self, results: dict[str, ModeResult], last: int) -> None:
        for key, mode in results.items():
            mode.layer_bytes = self.layer_bytes(f"{key.replace(' ', '-')}-{last}")

    # --- the orchestrator's own cost -----------------------------------------------------------

    def overhead(self, runs: int, name: str) -> tuple[dict[str, Timings], list[str]]:
        """`orchestrate build P` against the `docker buildx build` line its --dry-run prints.

        ``name`` is a profile whose image is fully cached (the last warm proxy build), so
        both commands do the same nothing and the difference is what orchestrate adds:
        Python start-up, reading the profile, checking the proxy, planning, rendering.
        Returns the timings and the docker CLI calls orchestrate made before building.
        """
        planned = subprocess.run(
            self.orchestrate("build", name, "--dry-run", "--json"),
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
            timeout=120,
        )
        plan = json.loads(planned.stdout)
        argv = [str(a) for a in plan["argv"]]
        build_env = "".join(f"{k}={shlex.quote(v)}\n" for k, v in plan["build_env"].items())
        raw_env = {**self.env, "ORCHESTRATE_BUILD_ENV": build_env}
        orchestrated, raw, before, dry, version = [], [], [], [], []
        calls: list[str] = []
        for i in range(runs):
            launched = time.time()
            seconds, code, log = self.run(
                self.orchestrate("-v", "build", name), f"overhead-orch-{i}"
            )
            orchestrated.append(seconds if code == 0 else float("nan"))
            started, calls = _build_start(log.read_text(errors="replace"))
            if started is not None:
                before.append(started - launched)
            seconds, code, _ = self.run(argv, f"overhead-raw-{i}", env=raw_env)
            raw.append(seconds if code == 0 else float("nan"))
            seconds, _, _ = self.run(
                self.orchestrate("build", name, "--dry-run"), f"overhead-dry-{i}"
            )
            dry.append(seconds)
            seconds, _, _ = self.run(self.orchestrate("--version"), f"overhead-version-{i}")
            version.append(seconds)
        timings = {
            "orchestrate build (cached)": Timings(
                "orchestrate build, all layers cached", orchestrated
            ),
            "raw build (cached)": Timings("its docker buildx build line, all layers cached", raw),
            "orchestrate before the build": Timings(
                "orchestrate build: from launch until it starts docker buildx build", before
            ),
            "orchestrate build --dry-run": Timings("orchestrate build --dry-run", dry),
            "orchestrate --version": Timings("orchestrate --version (start-up, imports)", version),
        }
        return timings, calls

    def decision(self, runs: int, hung_runs: int = 2) -> dict[str, Timings]:
        """How long deciding on the fallback takes when the proxy is absent."""
        closed = f"http://127.0.0.1:{free_port()}/index/"
        self.profile(
            "absent", bust="absent", proxy={**self.proxy_settings("absent"), "url": closed}
        )
        store = ProfileStore(self.profiles)
        resolved = store.resolve("absent")
        in_process = []
        for _ in range(max(runs, 10)):
            started = time.perf_counter()
            facts = proxy_facts(resolved, BuildOptions(), dry_run=False)
            in_process.append(time.perf_counter() - started)
            assert facts is not None
            assert not facts.healthy
        cli_absent, cli_no_proxy = [], []
        for i in range(runs):
            seconds, code, log = self.run(
                self.orchestrate("build", "absent", "--dry-run"), f"decide-absent-{i}"
            )
            if code != 0 or "mode:       cache-mount" not in log.read_text():
                raise RuntimeError(f"the absent proxy did not lead to the fallback: {log}")
            cli_absent.append(seconds)
            seconds, _, _ = self.run(
                self.orchestrate("build", "absent", "--dry-run", "--no-proxy"), f"decide-none-{i}"
            )
            cli_no_proxy.append(seconds)
        # A proxy that accepts connections and never answers: a hung proxy container.
        hung: list[float] = []
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            port = listener.getsockname()[1]
            self.profile(
                "hung",
                bust="hung",
                proxy={**self.proxy_settings("hung"), "url": f"http://127.0.0.1:{port}/index/"},
            )
            resolved_hung = store.resolve("hung")
            for _ in range(hung_runs):
                started = time.perf_counter()
                facts = proxy_facts(resolved_hung, BuildOptions(), dry_run=False)
                hung.append(time.perf_counter() - started)
                assert facts is not None
                assert not facts.healthy
        return {
            "decide (in process)": Timings("proxy check -> fallback, closed port", in_process),
            "decide (cli, absent)": Timings(
                "orchestrate build --dry-run, proxy absent", cli_absent
            ),
            "decide (cli, --no-proxy)": Timings(
                "orchestrate build --dry-run --no-proxy", cli_no_proxy
            ),
            "decide (hung proxy)": Timings("proxy check -> fallback, proxy never answers", hung),
        }

    # --- parallel builds through one cold proxy -----------------------------------------------

    def parallel(self, builds: int) -> ParallelResult:
        settings = self.proxy_settings(f"par{builds}")
        names = [
            self.profile(f"par{builds}-{i}", bust=_bust(), proxy=settings) for i in range(builds)
        ]
        self.proxy_up(names[0])
        self.upstream.mark()
        processes: list[tuple[subprocess.Popen[bytes], Path, float]] = []
        ended: dict[int, float] = {}
        monitor = MemoryPeak(settings["name"])
        with monitor.watch():
            started = time.perf_counter()
            for name in names:
                self._count += 1
                log = self.logs / f"{self._count:03d}-{name}.log"
                with log.open("wb") as out:
                    process = self.cleanup.spawn(self.orchestrate("build", name), out, self.env)
                processes.append((process, log, time.perf_counter()))
            deadline = started + BUILD_TIMEOUT
            while len(ended) < len(processes) and time.perf_counter() < deadline:
                for index, (process, _, _) in enumerate(processes):
                    if index not in ended and process.poll() is not None:
                        ended[index] = time.perf_counter()
                time.sleep(0.05)
            wall = time.perf_counter() - started
        if any(process.poll() is None for process, _, _ in processes):
            raise RuntimeError(f"{builds} parallel builds did not end in {BUILD_TIMEOUT:.0f} s")
        for process, _, _ in processes:
            self.cleanup.processes.remove(process)
        failures = sum(process.returncode != 0 for process, _, _ in processes)
        downloads = self.upstream.file_downloads()
        per_file = Counter(str(r["path"]).rsplit("/", 1)[-1] for r in downloads)
        slowest = max((ended.get(i, wall) - t0 + 0.0) for i, (_, _, t0) in enumerate(processes))
        self.proxy_down(names[0])
        result = ParallelResult(
            builds=builds,
            wall=wall,
            failures=failures,
            file_bytes=sum(int(r["bytes"]) for r in downloads),
            file_gets=len(downloads),
            per_file=dict(per_file),
            ideal_bytes=self.fixtures.total_bytes,
            proxy_peak_usage=monitor.peak_usage,
            proxy_peak_anon=monitor.peak_anon,
            proxy_kernel_peak=monitor.kernel_peak,
            slowest_build=slowest,
            logs=[str(log) for _, log, _ in processes],
        )
        print(
            f"bench:   parallel x{builds:<13} {wall:7.2f} s  upstream "
            f"{result.file_bytes / 1e6:6.1f} MB  failures {failures}",
            file=sys.stderr,
        )
        return result

    # --- the link -----------------------------------------------------------------------------

    def link_rate(self) -> float:
        """Bytes per second of one big file pulled from the upstream by the host."""
        name = max(self.fixtures.files, key=lambda n: self.fixtures.files[n])
        url = f"{self.upstream.host_base_url}/files/{name}"
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 - our upstream
            size = len(response.read())
        return size / (time.perf_counter() - started)


def _build_start(log: str) -> tuple[float | None, list[str]]:
    """When orchestrate started docker buildx build (epoch s), and the docker calls before."""
    calls: list[str] = []
    for record in json_lines(log):
        if record.get("event") == "docker":
            calls.append(str(record.get("action")))
        if record.get("event") == "running":
            stamp = str(record.get("timestamp", "")).replace("Z", "+00:00")
            return datetime.datetime.fromisoformat(stamp).timestamp(), calls
    return None, calls


def _bust() -> str:
    return secrets.token_hex(6)


_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def _size(text: str) -> int | None:
    match = re.match(r"^([0-9.]+)\s*([kKMG]?B)$", text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])
