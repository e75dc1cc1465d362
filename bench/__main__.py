"""Benchmark harness: ``.venv/bin/python -m bench [--quick] [--runs N] [--rate 50mbit]``.

Builds one reference image (numpy and pandas pip-installed in a venv) in every mode,
against a hermetic PyPI-like upstream behind a ``tc``-shaped link, and writes
``docs/benchmarks.md`` and ``docs/benchmarks.png``. See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import fixtures, infra, report
from bench.infra import Cleanup
from bench.runner import BASE_IMAGE, MODES, PROXY_IMAGE, ModeResult, Results, Runner, Timings
from devsupport.upstream_container import Upstream, build_upstream_image


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time the install layer of a numpy+pandas image in every mode and write "
        "docs/benchmarks.md and docs/benchmarks.png.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 runs per mode and only 4 parallel builds"
    )
    parser.add_argument("--runs", type=int, help="runs per mode (at least 3; default 5, quick 3)")
    parser.add_argument("--rate", default="50mbit", help="tc tbf rate of the upstream link")
    parser.add_argument(
        "--docs", type=Path, default=fixtures.REPO / "docs", help="where the report goes"
    )
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS_JSON",
        help="only write the report again from a results.json of an earlier run",
    )
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    return args


def _preflight() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root: tc shaping enters the upstream's network namespace")
    for tool in (infra.TC, infra.NSENTER):
        if not Path(tool).exists():
            problems.append(f"{tool} is missing (apt-get install -y iproute2 util-linux)")
    if importlib.util.find_spec("matplotlib") is None:
        problems.append("matplotlib is missing: .venv/bin/pip install matplotlib")
    for image in (BASE_IMAGE, PROXY_IMAGE):
        if not infra.docker("image", "inspect", image, check=False).strip().startswith("["):
            problems.append(f"image {image} is missing (scripts/setup; orchestrate proxy image)")
    if problems:
        raise SystemExit("bench: cannot run:\n  " + "\n  ".join(problems))


def _machine() -> dict[str, object]:
    cpu = platform.processor() or "?"
    memory = 0.0
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
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": memory, **infra.engine_facts()}


_T0 = time.monotonic()


def _stage(name: str) -> None:
    print(f"bench: == [{time.monotonic() - _T0:5.0f} s] {name}", file=sys.stderr)


def run(args: argparse.Namespace, cleanup: Cleanup, workdir: Path) -> Results:
    started = time.time()
    _stage("set-up")
    fix = fixtures.prepare()
    cleanup.start()
    network = f"{cleanup.prefix}-net"
    infra.create_network(network)
    image = build_upstream_image(tag=f"{infra.IMAGE_REPO}/upstream:{cleanup.run_id}")
    results = Results(
        started=started,
        facts={
            **_machine(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "rate": args.rate,
            "runs": args.runs,
            "wheels": dict(sorted(fix.files.items())),
            "total_bytes": fix.total_bytes,
            "base_image": BASE_IMAGE,
        },
    )
    with Upstream(fix.index, network, name=f"{cleanup.prefix}-upstream", image=image) as upstream:
        shaped = infra.shape(upstream.name, args.rate)
        runner = Runner(fix, upstream, network, cleanup, workdir)
        cleanup.orchestrate_down = lambda profile: _down(runner, profile)
        rate = runner.link_rate()
        results.facts["link_mbit"] = rate * 8 / 1e6
        results.facts["qdisc"] = shaped
        print(f"bench: upstream {upstream.host_url}, {rate * 8 / 1e6:.1f} Mbit/s", file=sys.stderr)
        runs = args.runs
        _stage("layers below the install step (once, untimed)")
        runner.warm_up()
        modes = {key: ModeResult(key, description) for key, description in MODES.items()}
        results.modes = modes
        starts = Timings("proxy start (orchestrate proxy up, new container)", [])
        for i in range(runs):
            _stage(f"round {i + 1} of {runs}: every mode once")
            proxy_profile = runner.round(i, modes, starts)
            if i == runs - 1:
                _stage("the orchestrator's overhead (against the warm proxy)")
                timings, calls = runner.overhead(5 if args.quick else 10, f"proxy-warm-{i}")
                results.timings.update(timings)
                results.facts["docker_calls"] = calls
            runner.proxy_down(proxy_profile)
        results.timings["proxy start"] = starts
        runner.layers(modes, runs - 1)
        _stage("deciding on the fallback")
        results.timings.update(
            runner.decision(3 if args.quick else 10, hung_runs=1 if args.quick else 2)
        )
        for builds in (4,) if args.quick else (4, 8):
            _stage(f"{builds} parallel builds through a cold proxy")
            results.parallel.append(runner.parallel(builds))
    results.finished = time.time()
    results.facts["duration"] = results.finished - started
    return results


def _down(runner: Runner, profile: str) -> None:
    subprocess.run(
        runner.orchestrate("proxy", "down", "--purge", "--profile", profile),
        env=runner.env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.report_only:
        results = Results.from_json(args.report_only.read_text())
        command = str(results.facts.get("command", ".venv/bin/python -m bench"))
        md, png = report.write(results, args.docs, command)
        print(f"bench: wrote {md} and {png}", file=sys.stderr)
        return 0
    _preflight()
    run_id = os.urandom(3).hex()
    workdir = fixtures.CACHE / "last-run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cleanup = Cleanup(run_id)
    command = ".venv/bin/python -m bench" + (" --quick" if args.quick else "")
    if args.runs != (3 if args.quick else 5):
        command += f" --runs {args.runs}"
    if args.rate != "50mbit":
        command += f" --rate {args.rate}"
    try:
        results = run(args, cleanup, workdir)
        results.facts["command"] = command
        (workdir / "results.json").write_text(results.as_json())
        md, png = report.write(results, args.docs, command)
        print(f"bench: wrote {md} and {png} in {results.facts['duration']:.0f} s", file=sys.stderr)
        for target in report.targets(results):
            print(
                f"bench: {'met   ' if target.met else 'MISSED'} {target.name}: {target.measured}",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        _stage("cleaning up")
        cleanup.close()
        _stage("done")
    return 0


__all__ = ["Timings", "main"]

if __name__ == "__main__":
    sys.exit(main())
