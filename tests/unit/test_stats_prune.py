"""`proxy stats` and `proxy prune` against the fake engine: the caches listed in their own
containers (`docker exec`), hits and misses read from the front's access log over HTTP,
and files removed from the front's cache only, in batches, never outside it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from orchestrator.engine.api import using
from orchestrator.errors import BadInput, ProxyUnavailable
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import prune, stats
from orchestrator.proxy.front import CACHE_PATH
from orchestrator.proxy.spec import OWNER, OWNER_LABEL
from tests.support.engine import FakeEngine, absent, container
from tests.support.front import Fronts, cache_line, closed_port, record

NOW = datetime.now(UTC).timestamp()
STARTED = datetime.fromtimestamp(NOW - 3600, UTC)
FRONT_ID, BACKEND_ID = "f" * 64, "b" * 64
WHEEL = "/index/demo/demo-1.0-py3-none-any.whl"


# What stats and prune ask first: whether the engine and buildx are there at all.
ENGINE_ANSWERS = {"version": "28.5", "buildx.is_installed": True}


def entry(name: str, size: int, age: float, key: str, where: str = CACHE_PATH) -> str:
    return cache_line(name, size, age, key, now=NOW, where=where)


LISTING = "\n".join(
    [
        entry("1", 100, 60, "/index/demo/|json"),
        entry("2", 5000, 7200, f"{WHEEL}|file"),
        entry("3", 9000, 60, "/index/other/other-2.0.tar.gz|file"),
    ]
)


def docker(listing: str = LISTING, *, running: bool = True) -> FakeEngine:
    """Both proxy containers, their caches listed by `docker exec`, `rm` accepted."""
    labels = {OWNER_LABEL: OWNER}
    found = {
        "orchestrator-proxpi": container(
            FRONT_ID, labels=labels, running=running, started_at=STARTED
        ),
        "orchestrator-proxpi-backend": container(BACKEND_ID, labels=labels),
    }

    def execute(ident: str, command: list[str]) -> str:
        if command[0] == "rm":
            return ""
        return listing if ident == FRONT_ID else "5000\n9000\n120\n"

    def unreachable(argv: tuple[str, ...], env: dict[str, str]) -> str:
        """The engine-side client (reach), finding nothing listening where it asks."""
        asks = json.loads(env[argv[-1]])
        return json.dumps([{"error": "[Errno 111] Connection refused"}] * len(asks)) + "\n"

    return FakeEngine(
        {
            **ENGINE_ANSWERS,
            "container.inspect": found.__getitem__,
            "container.execute": execute,
        },
        capturing=unreachable,
    )


def settings(port: int) -> ProxySettings:
    return ProxySettings(port=port, ca_bundle="off")


# --- stats ------------------------------------------------------------------------------------


def test_stats_count_both_caches_and_the_traffic_since_the_front_started(front: Fronts) -> None:
    served = front({})
    served.identifies("d1", host=FRONT_ID[:12])  # the engine's front, on this loopback
    served.logs(
        record(WHEEL, size=5000),
        record("/index/other/other-2.0.tar.gz", cache="MISS", size=9000),
        record("/index/other/", cache="MISS", size=0, status=502),
        record(WHEEL, size=5000, at=NOW - 7200),  # before the front started: not counted
    )
    fake = docker()
    with using(fake):
        found = stats.gather(settings(served.port))
    assert found == {
        "proxy": "orchestrator-proxpi",
        "front": {"entries": 3, "bytes": 14100, "files": 2, "file_bytes": 14000, "pages": 1},
        "backend": {"files": 3, "bytes": 14120},
        "since": STARTED.isoformat(),
        "traffic": {
            "requests": 3,
            "hits": 1,
            "misses": 1,
            "failed": 1,
            "hit_bytes": 5000,
            "miss_bytes": 9000,
        },
        "largest_projects": [
            {"project": "other", "files": 1, "bytes": 9000},
            {"project": "demo", "files": 1, "bytes": 5100},
        ],
    }
    assert [c.args for c in fake.made("container.execute")] == [
        (FRONT_ID, ["sh", "-c", stats.LIST_FRONT]),
        (BACKEND_ID, ["sh", "-c", stats.LIST_BACKEND]),
    ]


def test_stats_without_the_access_log_say_the_traffic_is_unknown() -> None:
    with using(docker()):
        found = stats.gather(settings(closed_port()))
    assert found["traffic"] is None
    assert "since start:   unknown (the access log could not be read)" in stats.text(found)


def test_stats_of_a_stopped_proxy_say_it_is_not_running() -> None:
    with using(docker(running=False)), pytest.raises(ProxyUnavailable) as info:
        stats.gather(settings(closed_port()))
    assert info.value.message == "the proxy container 'orchestrator-proxpi' is not running"


def test_stats_of_an_external_proxy_are_refused_before_asking_docker() -> None:
    fake = FakeEngine()
    external = ProxySettings(url="http://pypi.example:3141/root/pypi/")
    with using(fake), pytest.raises(BadInput, match="is not ours to read or prune"):
        stats.gather(external)
    assert fake.calls == []


# --- prune ------------------------------------------------------------------------------------


def test_prune_removes_old_files_in_the_front_and_keeps_pages() -> None:
    fake = docker()
    with using(fake):
        done = prune.prune(settings(5000), older_than=3600, max_size=None)
    [rm] = [c for c in fake.made("container.execute") if c.args[1][0] == "rm"]
    assert rm.args == (FRONT_ID, ["rm", "-f", f"{CACHE_PATH}/a/bc/{'2':0>32}"])
    assert done.line() == (
        "removed 1 files (5.0 kB) from the front's cache; 2 entries (9.1 kB) kept"
    )
    assert done.as_dict()["removed_projects"] == ["demo"]


def test_a_dry_run_prune_removes_nothing() -> None:
    fake = docker()
    with using(fake):
        done = prune.prune(settings(5000), older_than=0, max_size=None, dry_run=True)
    assert [c.args[1][0] for c in fake.made("container.execute")] == ["sh"]
    assert done.line().startswith("would remove 2 files (14.0 kB)")


def test_prune_removes_in_batches_and_never_outside_the_cache_directory() -> None:
    lines = [entry(str(n), 10, 7200, f"/index/p{n}/p{n}-1.0.tar.gz|file") for n in range(450)]
    lines.append(entry("a", 10, 7200, "/index/x/x-1.tar.gz|file", where="/etc/nginx"))
    lines.append(entry("b", 10, 7200, "/index/x/x-2.tar.gz|file", where=f"{CACHE_PATH}/.."))
    fake = docker("\n".join(lines))
    with using(fake):
        prune.prune(settings(5000), older_than=60, max_size=None)
    removals = [c.args[1][2:] for c in fake.made("container.execute") if c.args[1][0] == "rm"]
    assert [len(batch) for batch in removals] == [200, 200, 50]
    removed = [path for batch in removals for path in batch]
    assert all(p.startswith(f"{CACHE_PATH}/a/bc/") and ".." not in p for p in removed)


def test_prune_of_an_absent_proxy_says_how_to_start_it() -> None:
    fake = FakeEngine({**ENGINE_ANSWERS, "container.inspect": absent("container")})
    with using(fake), pytest.raises(ProxyUnavailable) as info:
        prune.prune(settings(5000), older_than=0, max_size=None)
    assert info.value.message == (
        "no proxy container named 'orchestrator-proxpi' (orchestrate proxy up)"
    )
