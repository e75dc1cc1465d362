"""One engine's part of the benchmark: set up, measure, clean up, write its results file.

It runs against whichever engine DOCKER_HOST and DOCKER_CONFIG select (scripts/engines),
and holds it only for its own part; ``python -m bench report`` merges the parts.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from bench import engine, fixtures, infra, modes, overhead, parallel
from bench.cli import Orchestrate
from bench.infra import Cleanup
from bench.model import Results
from bench.session import BASE_IMAGE, PROXY_IMAGE, Session
from devsupport.upstream_container import Upstream, build_upstream_image

_T0 = time.monotonic()


def stage(name: str) -> None:
    print(f"bench: == [{time.monotonic() - _T0:5.0f} s] {name}", file=sys.stderr)


def preflight() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root: tc shaping enters the upstream's network namespace")
    for tool in (infra.TC, infra.NSENTER):
        if not Path(tool).exists():
            problems.append(f"{tool} is missing (apt-get install -y iproute2 util-linux)")
    if importlib.util.find_spec("matplotlib") is None:
        problems.append("matplotlib is missing: .venv/bin/pip install -e '.[bench]'")
    for image in (BASE_IMAGE, PROXY_IMAGE):
        if not engine.image_present(image):
            problems.append(f"image {image} is missing (scripts/setup; orchestrate proxy image)")
    if problems:
        raise SystemExit("bench: cannot run:\n  " + "\n  ".join(problems))


def machine() -> dict[str, object]:
    cpu, memory = platform.processor() or "?", 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": memory}


def orchestrate_env(workdir: Path, kind: str) -> dict[str, str]:
    """orchestrate's environment: a cache of its own, BuildKit's progress kind, and Python
    free to keep its bytecode, as on a user's machine (a PYTHONDONTWRITEBYTECODE here would
    make every run compile orchestrator's modules again: some 40 ms of each build)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "XDG_CACHE_HOME": str(workdir / "xdg"), "BUILDKIT_PROGRESS": kind}


def measure(args: argparse.Namespace, session: Session, results: Results) -> None:
    """Every measurement, in an order that keeps each one's conditions: the overhead
    right after the last round, against its warm proxy and fully cached image."""
    stage("layers below the install step, and the proxy's first build (untimed)")
    modes.warm_up(session)
    results.modes = modes.results()
    for i in range(args.runs):
        stage(f"round {i + 1} of {args.runs}: every mode once")
        modes.one_round(session, i, results.modes)
        if i == args.runs - 1:
            stage("the orchestrator's overhead (against the warm proxy)")
            timings, seen = overhead.overhead(session, args.overhead_runs)
            results.timings.update(timings)
            results.facts.update(seen)
            links = [session.proxy_link(modes.PROXY_PROFILE) for _ in range(3)]
            results.facts["proxy_link_seconds"] = sorted(s for _, s in links)[1]
            results.facts["proxy_link_bytes"] = links[0][0]
        session.proxy_down(modes.PROXY_PROFILE)
    modes.layers(session, results.modes, args.runs - 1)
    stage("deciding on the fallback")
    results.timings.update(overhead.decision(session, 3 if args.quick else 5))
    for builds in (1, 4) if args.quick else (1, 4, 8):
        stage(f"{builds} parallel builds through a cold proxy, then through it warm")
        results.parallel += parallel.parallel(session, builds)


def run(args: argparse.Namespace) -> Results:
    preflight()
    run_id = os.urandom(3).hex()
    workdir = fixtures.CACHE / f"last-run-{args.engine}"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "profiles").mkdir(parents=True)
    (workdir / "logs").mkdir()
    kind = engine.progress_kind()
    env = orchestrate_env(workdir, kind)
    cli = Orchestrate(workdir / "profiles", workdir / "logs", env)
    cleanup = Cleanup(run_id, orchestrate=cli)
    results = Results(started=time.time(), facts={**machine(), **engine.facts(), "progress": kind})
    try:
        stage("set-up")
        fix = fixtures.prepare()
        cleanup.start()
        network = f"{cleanup.prefix}-net"
        infra.create_network(network)
        image = build_upstream_image(tag=f"{infra.IMAGE_REPO}/upstream:{cleanup.run_id}")
        results.facts |= {
            "engine_name": args.engine,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "rate": args.rate,
            "runs": args.runs,
            "overhead_runs": args.overhead_runs,
            "wheels": dict(sorted(fix.files.items())),
            "total_bytes": fix.total_bytes,
            "base_image": BASE_IMAGE,
            "command": args.command,
        }
        with Upstream(fix.index, network, name=f"{cleanup.prefix}-upstream", image=image) as up:
            results.facts["qdisc"] = infra.shape(up.name, args.rate)
            session = Session(fix, up, network, cleanup, cli, kind)
            results.facts["link_mbit"] = infra.link_rate(up, fix, BASE_IMAGE) * 8 / 1e6
            measure(args, session, results)
    finally:
        stage("cleaning up")
        cleanup.close()
    results.finished = time.time()
    results.facts["duration"] = results.finished - results.started
    return results
