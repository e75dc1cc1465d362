"""The benchmark's pure parts: reading BuildKit's progress, the raw line's environment,
the page's generated part. The benchmark itself needs an engine and minutes, and is not
part of the suite."""

from __future__ import annotations

import base64
import json

import pytest

from bench import progress
from bench.model import MODES, ModeResult, ParallelResult, Results, Sample, Timings
from bench.report import BEGIN, END, MarksMissing, generated, splice
from bench.report.tables import targets_of
from bench.session import BUILD_ENV, raw_env

PLAIN = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#9 [install 2/2] RUN /opt/orchestrator-bench/venv/bin/pip install --no-compile -r requirements.txt
#9 0.512 Looking in indexes: http://127.0.0.1:3141/index/
#9 2.100 Collecting numpy==2.4.6
#9 5.250 Installing collected packages: tzdata, numpy
#9 6.400 Successfully installed numpy-2.4.6 tzdata-2026.6
#9 DONE 6.6s
#10 exporting to image
#10 exporting layers 0.8s done
#10 DONE 0.9s
"""


def test_plain_progress_gives_the_steps_and_pips_phases() -> None:
    steps = progress.parse(PLAIN, "plain")
    assert steps.install == pytest.approx(6.6)
    assert steps.export == pytest.approx(0.9)
    assert steps.pip_start == pytest.approx(0.512)
    assert steps.pip_fetch == pytest.approx(5.25 - 0.512)
    assert steps.pip_install == pytest.approx(6.4 - 5.25)


def _log(vertex: str, stamp: str, text: str) -> dict[str, object]:
    data = base64.b64encode(text.encode()).decode()
    return {"vertex": vertex, "stream": 1, "data": data, "timestamp": stamp}


def test_rawjson_progress_reads_vertices_and_log_timestamps() -> None:
    run = "[install 2/2] RUN /opt/x/venv/bin/pip install -r requirements.txt"
    statuses = [
        {"vertexes": [{"digest": "sha256:a", "name": run, "started": "2026-11-26T01:00:00.1Z"}]},
        {
            "vertexes": [],
            "logs": [
                _log("sha256:a", "2026-11-26T01:00:00.600000001Z", "Looking in indexes: x\n"),
                _log("sha256:a", "2026-11-26T01:00:02.6Z", "Installing collected packages: a\n"),
                _log("sha256:a", "2026-11-26T01:00:03.1Z", "Successfully installed a-1\n"),
            ],
        },
        {
            "vertexes": [
                {
                    "digest": "sha256:a",
                    "name": run,
                    "started": "2026-11-26T01:00:00.1Z",
                    "completed": "2026-11-26T01:00:03.3Z",
                },
                {
                    "digest": "sha256:b",
                    "name": "exporting to image",
                    "started": "2026-11-26T01:00:03.4Z",
                    "completed": "2026-11-26T01:00:04.15Z",
                },
            ]
        },
    ]
    # As orchestrate's JSON logs carry them, and as docker prints them: both are read.
    wrapped = "\n".join(
        json.dumps({"event": "output", "program": "docker", "line": json.dumps(s)})
        for s in statuses
    )
    for text in (wrapped, "\n".join(json.dumps(s) for s in statuses)):
        steps = progress.parse(text, "rawjson")
        assert steps.install == pytest.approx(3.2)
        assert steps.export == pytest.approx(0.75)
        assert steps.pip_start == pytest.approx(0.5, abs=1e-6)
        assert steps.pip_fetch == pytest.approx(2.0)
        assert steps.pip_install == pytest.approx(0.5)


def test_a_cached_step_has_no_time() -> None:
    cached = {"digest": "sha256:a", "name": "RUN pip install x", "cached": True}
    assert progress.parse(json.dumps({"vertexes": [cached]}), "rawjson").install is None


def test_the_raw_line_gets_every_secret_variable_it_names() -> None:
    plan = {
        "argv": [
            "docker",
            "buildx",
            "build",
            "--secret",
            "id=a,env=ORCHESTRATE_BUILD_ENV",
            "--secret",
            "id=b,env=ORCHESTRATE_PIP_CONF",
            ".",
        ],
        "build_env": {"PIP_INDEX_URL": "http://x/index/", "PIP_NO_CACHE_DIR": "1"},
    }
    env = raw_env(plan, {"PATH": "/bin"})
    assert env[BUILD_ENV] == "PIP_INDEX_URL=http://x/index/\nPIP_NO_CACHE_DIR=1\n"
    assert env["ORCHESTRATE_PIP_CONF"] == ""
    assert env["PATH"] == "/bin"


def test_only_the_generated_part_of_the_page_is_replaced() -> None:
    page = f"# Title\n\nby hand\n\n{BEGIN}\nold figures\n{END}\n\nalso by hand\n"
    spliced = splice(page, "new figures")
    assert spliced.startswith("# Title\n\nby hand\n\n" + BEGIN)
    assert "new figures" in spliced
    assert "old figures" not in spliced
    assert spliced.endswith(f"{END}\n\nalso by hand\n")
    with pytest.raises(MarksMissing):
        splice("# no marks\n", "x")


def _results(engine: str, scale: float) -> Results:
    modes = {}
    for index, key in enumerate(MODES):
        seconds = scale * (1.0 + index)
        modes[key] = ModeResult(
            key,
            MODES[key],
            [
                Sample(seconds=seconds, ok=True, install_step=seconds / 2, export_step=0.1)
                for _ in range(3)
            ],
            10**8,
        )
    facts = {
        "engine_name": engine,
        "engine": "28.5.2",
        "buildx": "0.29.1",
        "storage": "overlay2",
        "cgroup": "2",
        "progress": "rawjson",
        "runs": 3,
        "overhead_runs": 10,
        "rate": "50mbit",
        "link_mbit": 46.5,
        "command": "python -m bench",
        "date": "today",
        "duration": 300.0,
        "cores": 2,
        "cpu": "cpu",
        "memory_gb": 24.0,
        "kernel": "6",
        "total_bytes": 3 * 10**7,
        "wheels": {"numpy-2-x.whl": 2 * 10**7, "pandas-3-x.whl": 10**7},
        "docker_calls": [],
        "remembered": True,
    }
    timings = {
        "orchestrate build (cached)": Timings("orchestrate build", [0.40, 0.42, 0.41]),
        "raw build (cached)": Timings("its line", [0.30, 0.31, 0.30]),
        "orchestrate --version": Timings("orchestrate --version", [0.05, 0.06, 0.05]),
    }
    parallel = [
        ParallelResult(
            4,
            10.0,
            0,
            3 * 10**7,
            2,
            {"numpy-2-x.whl": 1, "pandas-3-x.whl": 1},
            3 * 10**7,
            1,
            1,
            None,
            9.0,
            [],
        )
    ]
    return Results(0.0, facts, modes, parallel, timings, 1.0)


def test_targets_are_judged_from_the_figures() -> None:
    found = {t.name: t for t in targets_of(_results("current", 1.0))}
    assert found["overhead under 0.15 s"].met  # 0.41 - 0.30
    assert found["start-up under 0.12 s"].met
    assert not found["proxy warm within 1.05x of the floor"].met  # 4x in this made-up run
    assert found["4 cold builds at once: no failure, each file fetched once"].met


def test_both_engines_are_side_by_side_in_one_table() -> None:
    text = generated([_results("stock", 1.0), _results("current", 2.0)])
    header = next(line for line in text.splitlines() if line.startswith("| mode | stock"))
    assert "current: median (s)" in header
    assert "| proxy warm | 4.00 | 4.00-4.00 | 4.00x | 8.00 | 8.00-8.00 | 4.00x |" in text


def test_a_warm_build_is_split_into_the_builds_part_and_the_orchestrators() -> None:
    results = _results("stock", 1.0)
    line = results.modes["proxy warm line"]
    line.samples = [Sample(seconds=3.5, ok=True), Sample(seconds=3.7, ok=True)]
    text = generated([results])
    # proxy warm 4.00 s, its line 3.60 s, the floor 1.00 s
    assert "| proxy warm | stock | 4.00 | 3.60 | 1.00 | 3.60x | 4.00x | 0.40 |" in text
    found = {t.name: t for t in targets_of(results)}
    assert found["proxy warm: its buildx line alone within 1.05x of the floor"].measured == "3.60x"


def _parallel(builds: int, phase: str, wall: float) -> ParallelResult:
    return ParallelResult(builds, wall, 0, 0, 0, {}, 0, 0, 0, None, wall, [], phase)


def test_parallel_targets_take_the_extra_installs_and_the_floor_from_the_same_run() -> None:
    results = _results("stock", 1.0)
    results.parallel = [
        _parallel(1, "cold", 8.0),
        _parallel(1, "warm", 2.5),
        _parallel(4, "floor", 3.5),
        _parallel(4, "cold", 12.5),
        _parallel(4, "warm", 5.5),
    ]
    found = {t.name: t for t in targets_of(results)}
    cold = found[
        "4 cold builds at once within 1.2x one cold build + the extra installs "
        "(4 warm at once minus one warm)"
    ]
    assert (cold.measured, cold.met) == ("12.50 s against 12.60 s", True)  # 9.6 + 3.0
    warm = found["4 warm builds at once within 1.5x one warm build"]
    assert (warm.measured, warm.met) == ("2.20x", False)
    floor = found["4 floor builds (no proxy) at once within 1.5x one warm build"]
    assert (floor.measured, floor.met) == ("1.40x", True)
    results.parallel[3] = _parallel(4, "cold", 12.7)
    assert not {t.name: t for t in targets_of(results)}[cold.name].met


@pytest.mark.parametrize(("link", "met"), [(4.8, True), (4.6, False)])
def test_a_fresh_runner_may_take_the_wheels_time_from_the_proxy(link: float, met: bool) -> None:
    results = _results("stock", 1.0)  # floor 1.0 s, fresh runner 6.0 s
    results.facts["proxy_link_seconds"] = link
    name = "a fresh runner within the floor + the wheels' time from the proxy + 0.3 s"
    found = {t.name: t for t in targets_of(results)}[name]
    assert found.measured == f"floor + 5.00 s (wheels {link:.2f} s)"
    assert found.met is met
