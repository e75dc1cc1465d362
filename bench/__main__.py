"""Benchmark harness, one engine's part at a time, then one report of both.

    .venv/bin/python -m bench --engine stock [--quick] [--runs N] [--rate 50mbit]
    .venv/bin/python -m bench --engine current ...   (with scripts/engines' current engine)
    .venv/bin/python -m bench report                 (docs/benchmarks.md and .png)

Each engine's part writes ``bench/results/ENGINE.json`` and holds the engine only for
its own minutes; ``report`` needs no engine. See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import fixtures

RESULTS = fixtures.BENCH_DIR / "results"
ENGINES = ("stock", "current", "remote")


def _run_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time the install layer of a numpy+pandas image in every mode on one "
        "engine and write bench/results/ENGINE.json; `python -m bench report` merges them.",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        required=True,
        help="which engine DOCKER_HOST selects (scripts/engines use/env); names the results",
    )
    parser.add_argument("--quick", action="store_true", help="3 runs per mode, 4 parallel builds")
    parser.add_argument("--runs", type=int, help="runs per mode (at least 3; default 5, quick 3)")
    parser.add_argument("--rate", default="50mbit", help="tc tbf rate of the upstream link")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/ENGINE.json)")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    args.overhead_runs = 10
    args.out = args.out or RESULTS / f"{args.engine}.json"
    args.command = ".venv/bin/python -m bench " + " ".join(argv)
    return args


def _report_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench report",
        description="Merge the engines' results into docs/benchmarks.md (between its "
        "generated marks; the hand-written text around them is kept) and docs/benchmarks.png.",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where ENGINE.json are")
    parser.add_argument("--docs", type=Path, default=fixtures.REPO / "docs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from bench import report  # noqa: PLC0415 - matplotlib: only the report needs it

        args = _report_arguments(argv[1:])
        md, png = report.write(args.results, args.docs)
        print(f"bench: wrote {md} and {png}", file=sys.stderr)
        return 0
    args = _run_arguments(argv)
    from bench.run import run  # noqa: PLC0415 - python-on-whales: only a run needs it

    try:
        results = run(args)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(results.as_json())
    print(f"bench: wrote {args.out} in {results.facts['duration']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
