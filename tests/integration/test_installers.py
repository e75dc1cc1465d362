"""pip, uv, pip-tools and poetry in real builds, through the proxy and through the fallback.

The installers are real (tests/support/installers: wheels that scripts/setup downloaded
once, installed into a tools image with pip --no-index), and so are their project files:
uv.lock, poetry.lock and the pip-compile outputs are made by them against the hermetic
upstream, whose request log counts every file it sends whole (GET answered 200). One
Dockerfile has a stage per installer; each mode builds it twice, both times --fresh (every
RUN step runs), the first time with empty installer caches (a new cache namespace). What is
asserted, per mode:

- proxy: the first build fetches each file from the upstream exactly once, whatever the
  number of installers asking for it, and only proxpi fetches; the rebuild, again with
  every installer cache empty, fetches none: the proxy serves all;
- fallback (cache-mount): the proxy is down, the installers reach the upstream directly,
  and each cache family fetches each file exactly once: pip (pip, pip --require-hashes and
  pip-sync share pip's cache), uv (uv pip install and uv sync share uv's) and poetry (its
  own), told apart by their User-Agent; the rebuild, on the same caches, fetches none;
- in both: every installer leaves the same distributions, and every file of them matches
  its RECORD hash.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from python_on_whales import docker

from devsupport.upstream_container import Upstream, json_lines
from orchestrator.facts import builder
from tests.integration.conftest import TEST_LABEL, Workspace, address_of
from tests.integration.test_fallback import dead_proxy, namespace
from tests.support.installers import Projects, make_projects

INSTALLERS = ("pip", "pip-hashes", "uv-pip", "uv-sync", "pip-sync", "poetry")
FAMILY = {"pip": "pip", "pip-hashes": "pip", "pip-sync": "pip"}
FAMILY |= {"uv-pip": "uv", "uv-sync": "uv", "poetry": "poetry"}
INSTALLED = ["orch-inst-app==1.0", "orch-inst-lib==1.0"]
FILES = sorted(f"/files/{name}-1.0-py3-none-any.whl" for name in ("orch_inst_app", "orch_inst_lib"))

MATRIX_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS tools
COPY report.py /opt/report.py
WORKDIR /app

FROM tools AS pip
RUN python3 -m venv venv && venv/bin/pip install orch-inst-app
RUN venv/bin/python /opt/report.py > installed.txt

FROM tools AS pip-hashes
COPY requirements-hashes.txt ./
RUN python3 -m venv venv && venv/bin/pip install --require-hashes -r requirements-hashes.txt
RUN venv/bin/python /opt/report.py > installed.txt

FROM tools AS uv-pip
RUN uv venv venv && uv pip install --python venv/bin/python orch-inst-app
RUN venv/bin/python /opt/report.py > installed.txt

FROM tools AS uv-sync
RUN --mount=type=bind,source=uv/uv.lock,target=uv.lock \\
    --mount=type=bind,source=uv/pyproject.toml,target=pyproject.toml \\
    uv sync --locked --no-install-project
RUN .venv/bin/python /opt/report.py > installed.txt

FROM tools AS pip-sync
COPY requirements.txt ./
RUN python3 -m venv venv && pip-sync --python-executable venv/bin/python requirements.txt
RUN venv/bin/python /opt/report.py > installed.txt

FROM tools AS poetry
COPY poetry/pyproject.toml poetry/poetry.lock ./
RUN poetry install --no-root
# No installer here, so nothing is mounted: the venv must be in the image itself.
RUN for python in /root/.cache/pypoetry/virtualenvs/*/bin/python; do \\
      "$python" /opt/report.py; done > installed.txt

FROM tools
COPY --from=pip /app/installed.txt /report/pip
COPY --from=pip-hashes /app/installed.txt /report/pip-hashes
COPY --from=uv-pip /app/installed.txt /report/uv-pip
COPY --from=uv-sync /app/installed.txt /report/uv-sync
COPY --from=pip-sync /app/installed.txt /report/pip-sync
COPY --from=poetry /app/installed.txt /report/poetry
"""
REPORT = 'cd /report && for f in *; do sed "s/^/$f /" "$f"; done'


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def projects(
    tools: str, upstream: Upstream, network: str, tmp_path_factory: pytest.TempPathFactory
) -> Projects:
    """uv.lock, poetry.lock and requirements made by the real tools against the upstream."""
    started = time.monotonic()
    made = make_projects(tools, network, upstream.host_url, tmp_path_factory.mktemp("projects"))
    measure("projects locked", seconds=time.monotonic() - started)
    return made


def measure(what: str, **figures: Any) -> None:
    """One line per figure, for people reading a run with -s (CI time matters here)."""
    shown = {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}
    print(f"\nMEASURED {what}: {json.dumps(shown)}")


def engine_name() -> str:
    return str(docker.system.info().server_version)


@dataclass
class Build:
    """One orchestrate build: its mode, how long it took, what the upstream sent for it."""

    mode: str
    seconds: float
    downloads: list[dict[str, Any]]
    report: dict[str, list[str]] = field(default_factory=dict)


def build(workspace: Workspace, upstream: Upstream, profile: str, *flags: str) -> Build:
    upstream.mark()
    started = time.monotonic()
    result = workspace.orchestrate("build", profile, *flags)
    seconds = time.monotonic() - started
    built = [r for r in json_lines(result.stderr) if r.get("event") == "built"]
    mode = str(built[0]["mode"]) if built else "?"
    return Build(mode, seconds, upstream.file_downloads())


def read_report(tag: str) -> dict[str, list[str]]:
    """What each installer stage left: ``{stage: ["name==version files=N bad=M", ...]}``."""
    found: dict[str, list[str]] = {}
    for line in str(docker.run(tag, ["sh", "-c", REPORT], remove=True)).splitlines():
        stage, _, entry = line.partition(" ")
        found.setdefault(stage, []).append(entry)
    return found


def intact(report: dict[str, list[str]]) -> dict[str, list[str]]:
    """The report without file counts, asserting every file matched its RECORD hash."""
    out = {}
    for stage, entries in report.items():
        for entry in entries:
            _name, files, bad = entry.split()
            assert bad == "bad=0", f"{stage}: {entry}"
            assert int(files.removeprefix("files=")) > 0, f"{stage}: {entry}"
        out[stage] = [entry.split()[0] for entry in entries]
    return out


def per_file(downloads: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(record["path"]) for record in downloads)


def family(record: dict[str, Any]) -> str:
    """pip, uv or poetry, from the User-Agent the upstream logged."""
    return str(record.get("user_agent", "")).split("/", 1)[0].lower() or "?"


# --- the matrix --------------------------------------------------------------------------


@dataclass
class MatrixRun:
    cold: Build
    fresh: Build
    plan: dict[str, Any]


class Matrix:
    """Builds the matrix Dockerfile cold and --fresh in one mode, once per module."""

    def __init__(self, workspace: Workspace, upstream: Upstream, tools: str) -> None:
        self.workspace = workspace
        self.upstream = upstream
        self.tools = tools
        self.runs: dict[str, MatrixRun] = {}

    def run(self, mode: str) -> MatrixRun:
        if mode not in self.runs:
            self.runs[mode] = self._run(mode)
        return self.runs[mode]

    def _profile(self, name: str, **settings: Any) -> str:
        context = self.workspace.root / "projects"
        return self.workspace.profile(
            name, context, build_args={"BASE_IMAGE": self.tools}, **settings
        )

    def _run(self, mode: str) -> MatrixRun:
        name = f"matrix-{mode}"
        proxy = {} if mode == "proxy" else dead_proxy()
        tag = self._profile(name, proxy=proxy, cache_namespace=namespace())
        plan = json.loads(self.workspace.orchestrate("build", name, "--dry-run", "--json").stdout)
        # --fresh both times: the rendering is the same in every mode, so without it a
        # build may take every layer from an earlier one (Docker 28 does: cache mount ids
        # are not part of a step's cache key there) and run no installer at all.
        cold = build(self.workspace, self.upstream, name, "--fresh")
        cold.report = read_report(tag)
        if mode == "proxy":
            # Every installer cache empty: only the proxy can serve the rebuild.
            self._profile(name, proxy=proxy, cache_namespace=namespace())
        fresh = build(self.workspace, self.upstream, name, "--fresh")
        fresh.report = read_report(tag)
        for label, done in (("cold", cold), ("--fresh", fresh)):
            measure(
                f"matrix {mode} {label} build on {engine_name()}",
                seconds=done.seconds,
                upstream_files=len(done.downloads),
                by_family=dict(Counter(family(r) for r in done.downloads)),
            )
        return MatrixRun(cold, fresh, plan)


@pytest.fixture(scope="module")
def matrix(
    proxy_cleanup: dict[str, Any],
    upstream: Upstream,
    tools: str,
    projects: Projects,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("matrix")
    space = Workspace(root, dict(proxy_cleanup), {"XDG_CACHE_HOME": str(root / "cache")})
    context = root / "projects"
    subprocess.run(["cp", "-a", f"{projects.directory}/.", str(context)], check=True)
    (context / "Dockerfile").write_text(MATRIX_DOCKERFILE)
    yield Matrix(space, upstream, tools)
    for image in docker.image.list(filters=[("label", f"io.orchestrator.test-run={space.marker}")]):
        docker.image.remove(image, force=True)


def rendered_runs(plan: dict[str, Any]) -> list[str]:
    text = Path(plan["rendered_dockerfile"]).read_text()
    return [line for line in text.splitlines() if line.startswith("RUN ")]


def assert_every_installer_wired(plan: dict[str, Any]) -> None:
    installing = [
        line
        for line in rendered_runs(plan)
        if any(word in line for word in (" pip ", "pip install", "uv ", "pip-sync", "poetry "))
        and "report.py" not in line
    ]
    assert len(installing) == len(INSTALLERS), installing
    for line in installing:
        assert "id=orchestrator-env" in line, line
        assert "type=cache" in line, line
    (uv_sync,) = [line for line in installing if "uv sync" in line]
    assert "id=orchestrator-uv-lock-" in uv_sync
    assert "source=uv/uv.lock" not in uv_sync


def test_proxy_mode_fetches_each_file_once_and_a_fresh_rebuild_none(
    matrix: Matrix, upstream: Upstream, proxy_cleanup: dict[str, Any]
) -> None:
    run = matrix.run("proxy")
    assert run.plan["mode"] == run.cold.mode == run.fresh.mode == "proxy"
    assert_every_installer_wired(run.plan)
    assert sorted(per_file(run.cold.downloads).items()) == [(path, 1) for path in FILES], (
        "six installers, one upstream fetch per file"
    )
    front = address_of(proxy_cleanup["name"], proxy_cleanup["network"])
    assert {r["client"] for r in run.cold.downloads} == {front}, "only the front fetched"
    assert run.fresh.downloads == [], "with every installer cache empty, the proxy served all"
    assert intact(run.cold.report) == dict.fromkeys(INSTALLERS, INSTALLED)
    assert intact(run.fresh.report) == intact(run.cold.report)


def test_fallback_fetches_each_file_once_per_cache_family_and_a_fresh_rebuild_none(
    matrix: Matrix,
) -> None:
    run = matrix.run("cache-mount")
    assert run.plan["mode"] == run.cold.mode == run.fresh.mode == "cache-mount"
    assert_every_installer_wired(run.plan)
    by_family: dict[str, Counter[str]] = {}
    for record in run.cold.downloads:
        by_family.setdefault(family(record), Counter())[str(record["path"])] += 1
    expected = {name: Counter(dict.fromkeys(FILES, 1)) for name in sorted(set(FAMILY.values()))}
    assert by_family == expected, "each cache family fetches each file once"
    assert run.fresh.downloads == [], "the cache mounts serve the --fresh rebuild"
    assert intact(run.cold.report) == dict.fromkeys(INSTALLERS, INSTALLED)


def test_both_modes_install_the_same_set(matrix: Matrix) -> None:
    proxy, fallback = matrix.run("proxy"), matrix.run("cache-mount")
    assert proxy.cold.report == fallback.cold.report
    assert proxy.fresh.report == fallback.fresh.report == proxy.cold.report


def test_the_uv_lock_copy_names_the_index_in_use_and_the_user_s_lock_is_untouched(
    matrix: Matrix, projects: Projects, proxy_cleanup: dict[str, Any]
) -> None:
    """The lock made by real uv records the upstream, as a real one records PyPI; the
    build reads a copy naming the proxy (proxy mode) or the same upstream (fallback)."""
    original = projects.read("uv/uv.lock")
    assert f'registry = "{projects.index}"' in original
    proxy_url = f"http://127.0.0.1:{proxy_cleanup['port']}/index/"
    for mode in ("proxy", "cache-mount"):
        plan = matrix.run(mode).plan
        (line,) = [line for line in rendered_runs(plan) if "uv sync" in line]
        lock_id = line.split("id=orchestrator-uv-lock-")[1].split(",")[0]
        spec = next(s for s in plan["argv"] if s.startswith(f"id=orchestrator-uv-lock-{lock_id},"))
        copy = Path(spec.split("src=")[1]).read_text()
        if mode == "proxy":
            assert f'registry = "{proxy_url}"' in copy
            assert projects.index not in copy
        else:
            assert copy == original
    assert (matrix.workspace.root / "projects" / "uv" / "uv.lock").read_text() == original


def test_a_run_of_a_mounted_uv_project_writes_none_of_its_files(
    matrix: Matrix, tools: str, projects: Projects
) -> None:
    """uv's own example runs so (`-v "$PWD:/app" -v /app/.venv`, then `uv run`), as root:
    under orchestrate the host's uv.lock was rewritten to name the proxy, and the run as
    1000:1000 could not make uv's cache (issue 21). Now the project is byte-identical
    after the run, which prints what plain docker run prints. Its pyproject names its
    index, as a real one's lock names PyPI, uv's default."""
    space = matrix.workspace
    project = space.root / "uv-example"
    shutil.copytree(projects.directory / "uv", project)
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write(f'\n[[tool.uv.index]]\nurl = "{projects.index}"\ndefault = true\n')
    mounts = ("--volume", f"{project}:/app", "--volume", "/app/.venv", "--workdir", "/app")
    command = ["uv", "run", "python", "-c", "import orch_inst_app; print(1)"]
    plain = ["docker", "run", "--rm", "--network", space.proxy["network"], *mounts, tools]
    subprocess.run([*plain, "uv", "lock", "--quiet"], check=True, timeout=120)
    before = project_files(project)
    baseline = subprocess.run(
        [*plain, *command], capture_output=True, text=True, check=True, timeout=120
    )
    assert project_files(project) == before, "plain docker run leaves the project alone"
    context = space.root / "uv-example-image"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    space.profile("uvexample", context, tags=[tools])  # no user: the image's root stands
    result = space.orchestrate(
        "run", "uvexample", *(f"--docker-opt={a}={b}" for a, b in pairwise(mounts)), "--", *command
    )
    (ran,) = [r for r in json_lines(result.stderr) if r.get("event") == "run"]
    assert ran["mode"] == "proxy", result.stderr
    assert result.stdout.strip() == baseline.stdout.strip() == "1"
    assert project_files(project) == before, "no file of the project changed"
    compose = space.orchestrate("env", "uvexample", "--format", "compose", "--service", "app")
    assert "UV_DEFAULT_INDEX" not in compose.stdout
    assert "user" not in yaml.safe_load(compose.stdout)["services"]["app"]


def pairwise(words: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(zip(words[::2], words[1::2], strict=True))


def project_files(root: Path) -> dict[Path, bytes]:
    return {path.relative_to(root): path.read_bytes() for path in root.rglob("*") if path.is_file()}


# --- parallel fallback builds with uv ---------------------------------------------------------

PARALLEL_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
COPY report.py /opt/report.py
WORKDIR /app
# Every build waits for the same moment, so that their uv steps really run together.
ARG UV_START_AT=0
RUN uv venv venv && while [ "$(date +%s)" -lt "$UV_START_AT" ]; do sleep 0.05; done \\
 && date +%s.%N > uv-started \\
 && uv pip install --python venv/bin/python orch-inst-app orch-inst-big && date +%s.%N > uv-ended
RUN --mount=type=bind,source=uv/uv.lock,target=uv.lock \\
    --mount=type=bind,source=uv/pyproject.toml,target=pyproject.toml \\
    uv sync --locked --no-install-project
RUN venv/bin/python /opt/report.py > installed && .venv/bin/python /opt/report.py >> installed
"""
PARALLEL = 4
PARALLEL_START_SECONDS = 20  # from writing the profiles to the uv steps' common start (12 s was
# too short with the other pytest worker building beside these four builds: seen on 20.10)


def test_parallel_fallback_builds_with_uv_share_its_cache_intact(
    workspace: Workspace, upstream: Upstream, projects: Projects
) -> None:
    tools = projects.tools
    context = workspace.root / "parallel"
    subprocess.run(["cp", "-a", f"{projects.directory}/.", str(context)], check=True)
    (context / "Dockerfile").write_text(PARALLEL_DOCKERFILE)
    shared = namespace()
    start_at = str(int(time.time()) + PARALLEL_START_SECONDS)
    tags = [
        workspace.profile(
            f"par{i}",
            context,
            proxy=dead_proxy(),
            cache_namespace=shared,
            build_args={"BASE_IMAGE": tools, "UV_START_AT": start_at},
        )
        for i in range(PARALLEL)
    ]
    upstream.mark()
    started = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(
            pool.map(
                lambda i: workspace.orchestrate("build", f"par{i}", "--fresh", check=False),
                range(PARALLEL),
            )
        )
    seconds = time.monotonic() - started
    assert [r.returncode for r in results] == [0] * PARALLEL, [r.stderr[-2000:] for r in results]
    expected = ["orch-inst-app==1.0", "orch-inst-big==1.0", "orch-inst-lib==1.0", *INSTALLED]
    for tag in tags:
        lines = str(docker.run(tag, ["cat", "/app/installed"], remove=True)).splitlines()
        assert [line.split()[0] for line in lines] == expected, lines
        assert all(line.endswith(" bad=0") for line in lines), lines
    spans = [
        [
            float(x)
            for x in str(docker.run(tag, ["cat", "uv-started", "uv-ended"], remove=True)).split()
        ]
        for tag in tags
    ]
    overlapping = sum(
        1
        for i, (start, end) in enumerate(spans)
        if any(s < end and start < e for j, (s, e) in enumerate(spans) if j != i)
    )
    downloads = per_file(upstream.file_downloads())
    measure(
        f"{PARALLEL} parallel uv fallback builds on {engine_name()}",
        seconds=seconds,
        upstream_files=sum(downloads.values()),
        distinct=len(downloads),
        uv_steps_overlapping=overlapping,
    )
    assert overlapping == PARALLEL, f"the uv steps did not all run together: {spans}"
    assert set(downloads) == {*FILES, "/files/orch_inst_big-1.0-py3-none-any.whl"}
    assert set(downloads.values()) == {1}, (
        f"uv's cache mount lets each file be fetched once: {downloads}"
    )


# --- every RUN form in one Dockerfile -------------------------------------------------------

MIXED_HEAD = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
COPY report.py /opt/report.py
COPY requirements.txt /app/
COPY poetry/ /app/poetry/
WORKDIR /app
# shell form: pip
RUN python3 -m venv /opt/shell-pip && /opt/shell-pip/bin/pip install orch-inst-app
# shell form, as uv's Docker guide writes it, with the step's own cache mount
RUN --mount=type=cache,id={own_cache},target=/root/.cache/uv \\
    --mount=type=bind,source=uv/uv.lock,target=uv.lock \\
    --mount=type=bind,source=uv/pyproject.toml,target=pyproject.toml \\
    uv sync --locked --no-install-project
RUN --mount=type=cache,id={own_cache},target=/root/.cache/uv ls /root/.cache/uv > own-cache
# exec form: uv pip install, then pip (settings from /etc/xdg/uv/uv.toml, /etc/xdg/pip/pip.conf)
RUN ["python3", "-m", "venv", "/opt/exec-uv"]
RUN ["uv", "pip", "install", "--python", "/opt/exec-uv/bin/python", "orch-inst-app"]
RUN ["python3", "-m", "venv", "/opt/exec-pip"]
RUN ["/opt/exec-pip/bin/pip", "install", "orch-inst-app"]
"""
MIXED_HEREDOCS = """\
# heredoc script: poetry
RUN <<EOF
set -e
cd poetry
POETRY_VIRTUALENVS_IN_PROJECT=true poetry install --no-root
EOF
# heredoc with its own interpreter: pip-sync (settings from pip.conf)
RUN <<EOF
#!/bin/sh
set -e
python3 -m venv /opt/heredoc-sync
pip-sync --python-executable /opt/heredoc-sync/bin/python requirements.txt
EOF
"""
MIXED_TAIL = """\
RUN for env in /opt/shell-pip/ /opt/exec-uv/ /opt/exec-pip/ /opt/heredoc-sync/ /app/.venv/ \\
      /app/poetry/.venv/; do [ -x "${env}bin/python" ] || continue; \\
      echo "${env%/} $("${env}bin/python" /opt/report.py | tr '\\n' ' ')"; done > installed
"""


def mixed_dockerfile(*, heredocs: bool, own_cache: str) -> str:
    body = MIXED_HEAD + (MIXED_HEREDOCS if heredocs else "") + MIXED_TAIL
    return body.replace("{own_cache}", own_cache)


@pytest.fixture(scope="session")
def frontend_heredocs(engine: None) -> bool:
    return builder.detect(None).heredocs


def test_every_run_form_is_wired_and_a_fresh_rebuild_downloads_nothing(
    workspace: Workspace,
    proxy: dict[str, Any],
    upstream: Upstream,
    projects: Projects,
    frontend_heredocs: bool,
) -> None:
    """Shell, exec and heredoc steps, each with another installer. A frontend without
    heredocs (Docker 20.10) builds the same file without its heredoc steps, after showing
    that the file with them fails with plain docker too and that the plan leaves them."""
    own_cache = f"orchestrator-test-own-uv-{uuid.uuid4().hex[:12]}"
    context = workspace.root / "mixed"
    subprocess.run(["cp", "-a", f"{projects.directory}/.", str(context)], check=True)
    (context / "Dockerfile").write_text(mixed_dockerfile(heredocs=True, own_cache=own_cache))
    tools = projects.tools
    settings = {"build_args": {"BASE_IMAGE": tools}}
    tag = workspace.profile("mixed", context, cache_namespace=namespace(), **settings)
    plan = json.loads(workspace.orchestrate("build", "mixed", "--dry-run", "--json").stdout)
    heredoc_lines = [
        d for d in plan["decisions"] if d["reason"].startswith("a heredoc needs dockerfile 1.4")
    ]
    if frontend_heredocs:
        assert heredoc_lines == []
        wired = 6
    else:
        assert [d["choice"] for d in heredoc_lines] == ["left as written"] * 2
        plain = subprocess.run(
            ["docker", "buildx", "build", "--build-arg", f"BASE_IMAGE={tools}", str(context)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert plain.returncode != 0, "plain docker builds heredocs on this engine after all"
        failed = workspace.orchestrate("build", "mixed", check=False)
        assert failed.returncode == 4, failed.stderr
        (context / "Dockerfile").write_text(mixed_dockerfile(heredocs=False, own_cache=own_cache))
        plan = json.loads(workspace.orchestrate("build", "mixed", "--dry-run", "--json").stdout)
        wired = 4
    rendered = Path(plan["rendered_dockerfile"]).read_text()
    installing = [
        line
        for line in rendered.splitlines()
        if line.startswith("RUN ")
        and "report.py" not in line
        and ("install" in line or "uv sync" in line or (frontend_heredocs and "<<EOF" in line))
    ]
    assert len(installing) == wired, installing
    for line in installing:
        assert "id=orchestrator-env" in line or "id=orchestrator-pip-conf" in line, line
    (guide,) = [line for line in installing if "uv sync" in line]
    assert f"--mount=type=cache,id={own_cache},target=/root/.cache/uv " in guide
    assert "orchestrator-uv-" not in guide.replace("orchestrator-uv-lock-", "")

    cold = build(workspace, upstream, "mixed", "--fresh")
    assert cold.mode == "proxy"
    assert str(docker.run(tag, ["cat", "/app/own-cache"], remove=True)).strip(), (
        "uv filled the step's own cache mount, where the step put it"
    )
    workspace.profile("mixed", context, cache_namespace=namespace(), **settings)
    fresh = build(workspace, upstream, "mixed", "--fresh")
    measure(
        f"mixed forms on {engine_name()}",
        cold_seconds=cold.seconds,
        cold_files=len(cold.downloads),
        fresh_seconds=fresh.seconds,
        fresh_files=len(fresh.downloads),
    )
    assert fresh.downloads == [], "every step went through the proxy, which had every file"
    lines = str(docker.run(tag, ["cat", "/app/installed"], remove=True)).splitlines()
    environments = {line.split()[0]: line.split()[1:] for line in lines}
    expected = {"/opt/shell-pip", "/opt/exec-uv", "/opt/exec-pip", "/app/.venv"}
    if frontend_heredocs:
        expected |= {"/opt/heredoc-sync", "/app/poetry/.venv"}
    assert set(environments) == expected
    for env, entries in environments.items():
        assert entries[0::3] == INSTALLED, (env, entries)
        assert set(entries[2::3]) == {"bad=0"}, (env, entries)


REQUIREMENT_FILES_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY direct.txt dead.txt ./
RUN python3 -m venv venv && venv/bin/pip install -r direct.txt
RUN uv venv uvenv && uv pip install --python uvenv/bin/python -r dead.txt
"""


def test_index_lines_in_requirement_files_are_told_as_the_installers_obey_them(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream, tools: str
) -> None:
    """What the plan says of an --index-url inside a requirement file is what the real
    installers do: pip goes to that index itself (the upstream sees pip, not proxpi), uv
    keeps the proxy's UV_DEFAULT_INDEX (a dead index in its file is never asked)."""
    host = upstream.host_url.split("/")[2].split(":")[0]
    files = {
        "direct.txt": f"--index-url {upstream.host_url}\n--trusted-host {host}\norch-demo-app\n",
        "dead.txt": "--index-url http://127.0.0.1:9/simple/\norch-demo-app\n",
    }
    context = workspace.context("reqs", REQUIREMENT_FILES_DOCKERFILE, files)
    settings = {"build_args": {"BASE_IMAGE": tools}, "cache_namespace": namespace()}
    workspace.profile("reqs", context, **settings)
    plan = json.loads(workspace.orchestrate("build", "reqs", "--dry-run", "--json").stdout)
    said = {d["topic"]: d["choice"] for d in plan["decisions"] if ".txt:1 " in d["choice"]}
    assert said == {
        "RUN line 5": f"left as written: direct.txt:1 --index-url {upstream.host_url}",
        "RUN line 6": "index kept over dead.txt:1 --index-url http://127.0.0.1:9/simple/",
    }, plan["decisions"]
    done = build(workspace, upstream, "reqs", "--fresh")
    assert done.mode == "proxy"
    agents = {family(r) for r in done.downloads}
    assert "pip" in agents, "pip fetched from the index its file names, not through the proxy"
    assert "uv" not in agents, "uv went through the proxy (proxpi fetches with its own agent)"


# --- a base image that moves poetry's cache ----------------------------------------------------

POETRY_CACHE_DIR = "/opt/poetry/cache"
MOVED_CACHE_BASE = f"ARG TOOLS\nFROM ${{TOOLS}}\nENV POETRY_CACHE_DIR={POETRY_CACHE_DIR}\n"
POETRY_ON_BASE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY poetry/pyproject.toml poetry/poetry.lock ./
RUN poetry install --no-root
"""


def test_a_base_image_s_poetry_cache_dir_keeps_the_fallback_s_downloads(
    workspace: Workspace, upstream: Upstream, projects: Projects
) -> None:
    """Issue 21, item 4: a base image's ENV POETRY_CACHE_DIR, which the Dockerfile never
    names, is where the fallback mounts poetry's downloads, so a --fresh rebuild fetches
    nothing (read from the Dockerfile alone, the mount was at /root/.cache/pypoetry, which
    poetry never used, and every build fetched every file again)."""
    base_context = workspace.context("moved-base", MOVED_CACHE_BASE)
    base = f"orchestrator-test/poetry-cache-dir:{workspace.root.name}"
    docker.build(
        base_context,
        tags=[base],
        build_args={"TOOLS": projects.tools},
        labels={TEST_LABEL: workspace.marker},  # removed with the test's images
        load=True,
        pull=False,
        progress=False,
    )
    context = workspace.root / "poetry-on-base"
    subprocess.run(["cp", "-a", f"{projects.directory}/.", str(context)], check=True)
    (context / "Dockerfile").write_text(POETRY_ON_BASE)
    settings = {"build_args": {"BASE_IMAGE": base}, "cache_namespace": namespace()}
    workspace.profile("poetry-on-base", context, proxy=dead_proxy(), **settings)
    plan = json.loads(
        workspace.orchestrate("build", "poetry-on-base", "--dry-run", "--json").stdout
    )
    (poetry,) = [line for line in rendered_runs(plan) if "poetry install" in line]
    assert f"target={POETRY_CACHE_DIR}/artifacts," in poetry
    cold = build(workspace, upstream, "poetry-on-base", "--fresh")
    fresh = build(workspace, upstream, "poetry-on-base", "--fresh")
    measure(
        f"poetry on a base image with POETRY_CACHE_DIR, fallback, on {engine_name()}",
        cold=cold.seconds,
        fresh=fresh.seconds,
    )
    assert cold.mode == fresh.mode == "cache-mount"
    assert sorted(per_file(cold.downloads).items()) == [(path, 1) for path in FILES]
    assert {family(r) for r in cold.downloads} == {"poetry"}
    assert fresh.downloads == [], "poetry found its downloads on the cache mount"
