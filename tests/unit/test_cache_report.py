"""The cache report, `proxy stats` and `proxy prune`: their pure parts, and bad input."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator import report
from orchestrator.engine.api import using
from orchestrator.errors import BadInput
from orchestrator.facts import builder
from orchestrator.proxy import accesslog, prune, stats
from orchestrator.proxy.front import CACHE_PATH, LOG_FORMAT
from orchestrator.proxy.probe import PROBE_AGENT
from orchestrator.units import human_bytes, parse_duration, parse_human, parse_size
from tests.support.engine import FakeEngine
from tests.support.front import cache_line
from tests.unit.test_cli import assert_one_line_error, orchestrate

WHEEL = "/index/orch-demo-lib/orch_demo_lib-1.0-py3-none-any.whl"


def line(uri: str, cache: str = "HIT", upstream: str = "", **more: Any) -> str:
    record = {
        "msec": 1764115200.5,
        "method": "GET",
        "uri": uri,
        "status": 200,
        "bytes": 1000,
        "cache": cache,
        "upstream_status": upstream,
        "request_time": 0.01,
        "client": "127.0.0.1",
        "agent": "pip/24.0",
        **more,
    }
    return json.dumps(record)


def span(*lines: str) -> accesslog.Span:
    return accesslog.Span(tuple(accesslog.parse("\n".join(lines))))


# --- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("90", 90)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("500M", 500 * 1024**2), ("2G", 2 * 1024**3), ("2GiB", 2 * 1024**3), ("10k", 10240)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "7 days", "-1d", "1y", "d"])
def test_bad_durations_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match=r"--older-than: .* is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "-5M", "2X", "M", "1.5.5G"])
def test_bad_sizes_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match=r"--max-size: .* is not a size"):
        parse_size(text)


def test_bytes_print_and_read_back() -> None:
    assert [human_bytes(n) for n in (0, 999, 1500, 2_345_678)] == [
        "0 B",
        "999 B",
        "1.5 kB",
        "2.3 MB",
    ]
    assert [parse_human(t) for t in ("0B", "4.096kB", "12.3MB", "1GB", "n/a")] == [
        0,
        4096,
        12_300_000,
        1_000_000_000,
        None,
    ]


# --- the report -----------------------------------------------------------------------------


def test_the_log_format_carries_what_the_report_reads() -> None:
    for variable in ("$body_bytes_sent", "$upstream_cache_status", "$upstream_status", "$agent"):
        assert variable in LOG_FORMAT


def test_a_record_names_its_installer() -> None:
    agents = ["pip/24.0", "uv/0.4.18", "poetry/1.8.3", "", "Python-urllib/3.11"]
    records = [accesslog.parse(line(WHEEL, agent=agent))[0] for agent in agents]
    assert [r.installer for r in records] == ["pip", "uv", "poetry", "-", "python-urllib"]


def test_a_span_counts_files_cached_and_fetched_by_installer() -> None:
    found = span(
        line("/index/orch-demo-lib/", cache="MISS", upstream="200"),
        line(WHEEL, cache="MISS", upstream="200", bytes=5000),
        line(WHEEL.replace("lib", "app"), bytes=7000),
        line(WHEEL + ".metadata", cache="HIT", agent="uv/0.4.18", bytes=300),
        line(WHEEL, agent=PROBE_AGENT),  # orchestrator's own probe: not counted
        line("/index/gone/gone-1.0.tar.gz", cache="MISS", upstream="404", status=404),
    )
    made = report.from_span("proxy", found)
    assert made.traffic == report.Traffic(report.Tally(2, 7300), report.Tally(1, 5000))
    assert made.installers["pip"] == report.Traffic(report.Tally(1, 7000), report.Tally(1, 5000))
    assert made.installers["uv"].cached == report.Tally(1, 300)
    assert made.pages == report.Traffic(report.Tally(), report.Tally(1, 1000))
    assert made.failed == 1
    assert made.line() == (
        "orchestrate: cache: 2 files (7.3 kB) served from the cache, 1 file (5.0 kB) fetched "
        "from the upstream, 1 request failed (pip 1 cached/1 fetched, uv 1 cached/0 fetched)"
    )
    data = made.as_dict()
    assert (data["cached_files"], data["fetched_files"], data["fetched_bytes"]) == (2, 1, 5000)
    assert data["installers"]["pip"]["cached_files"] == 1


def test_a_304_is_an_installer_cache_confirmed_not_bytes_served() -> None:
    made = report.from_span("proxy", span(line(WHEEL, status=304, bytes=0), line(WHEEL)))
    assert made.traffic is not None
    assert made.traffic.revalidated == report.Tally(1, 0)
    assert made.traffic.cached == report.Tally(1, 1000)
    assert made.line().endswith(
        "1 file (1.0 kB) served from the cache, 0 files (0 B) fetched from the upstream, "
        "1 already in the installers' own caches (pip 1 cached/0 fetched)"
    )


def test_uv_s_head_before_a_get_is_one_file_fetched_not_two() -> None:
    """uv asks HEAD, the front fetches the miss whole, then uv's GET hits: one file
    fetched (issue 21 saw 15 files (0 B) fetched and the same 15 served from the cache)."""
    uv = "uv/0.13.9"
    other = WHEEL.replace("lib", "app")
    made = report.from_span(
        "proxy",
        span(
            line(WHEEL, method="HEAD", cache="MISS", upstream="200", bytes=0, agent=uv),
            line(WHEEL, bytes=5000, agent=uv),
            line(other, method="HEAD", bytes=0, agent=uv),  # a hit: nothing fetched
            line(other, bytes=7000, agent=uv),
            line(WHEEL + ".metadata", method="HEAD", cache="MISS", upstream="200", bytes=0),
        ),
    )
    assert made.traffic is not None
    assert made.traffic.fetched == report.Tally(2, 5000), "the HEAD alone still went upstream"
    assert made.traffic.cached == report.Tally(1, 7000)


def test_mount_ids_are_found_in_any_order_and_own_mounts_without_ids_are_not_weighed() -> None:
    rendered = (
        "RUN --mount=type=cache,id=ns-pip-0,target=/c pip install a\n"
        "RUN --mount=target=/root/.cache/uv,type=cache,id=mine uv sync\n"
        "RUN --mount=type=cache,target=/root/.cache/pip pip install b\n"
    )
    assert report.mount_ids(rendered) == ("ns-pip-0", "mine")
    watcher = report.Watcher.start("cache-mount", rendered=[rendered.splitlines()[2]])
    assert "without id= is named by its target" in watcher.finish().line()


def test_a_build_that_asked_nothing_says_so() -> None:
    made = report.from_span("proxy", span(line(WHEEL, agent=PROBE_AGENT)))  # a probe only
    assert made.line() == ("orchestrate: cache: nothing asked of the proxy")
    assert made.as_dict()["cached_files"] == 0


def test_a_build_that_asked_for_pages_only_says_so() -> None:
    made = report.from_span("proxy", span(line("/index/orch-demo-lib/"), line("/index/x/")))
    assert made.line() == (
        "orchestrate: cache: no file asked for, 2 index pages served "
        "(the installers' own caches had every file they needed)"
    )
    assert made.as_dict()["pages"]["cached_files"] == 2


def test_offline_hits_count_and_offline_misses_are_not_fetches() -> None:
    found = span(
        line("/offline" + WHEEL),
        line("/offline/index/new/new-1.0.tar.gz", cache="MISS", upstream="502", status=404),
    )
    made = report.from_span("offline", found)
    assert made.traffic == report.Traffic(report.Tally(1, 1000), report.Tally())
    assert made.failed == 1


DU = """\
ID:\t\tabc
Created at:\t2025-11-26 00:00:00
Mutable:\ttrue
Size:\t\t12.3MB
Description:\tcached mount /home/app/.cache/pip from exec pip with id "/orch-pip-1000"
Type:\t\texec.cachemount

ID:\t\tdef
Size:\t\t4.096kB
Description:\tcached mount /root/.cache/uv from exec uv pip install with id "orch-uv-0"

ID:\t\tghi
Size:\t\t1GB
Description:\tcached mount /x from exec y with id "somebody-else"

ID:\t\tjkl
Size:\t\t5MB
Description:\t[2/3] RUN pip install x
"""


def test_cache_mounts_are_weighed_by_their_ids() -> None:
    assert report.mount_bytes(DU, ["orch-pip-1000", "orch-uv-0"]) == 12_304_096
    assert report.mount_bytes(DU, ["nothing"]) == 0


def test_an_engine_that_does_not_name_mounts_is_not_guessed_at() -> None:
    old = "ID:\t\tabc\nSize:\t\t12.3MB\nDescription:\tcached mount /x from exec pip install\n"
    with pytest.raises(report.NotTold):
        report.mount_bytes(old, ["orch-pip-1000"])
    assert report.mount_bytes("ID:\tabc\nSize:\t1MB\nDescription:\tmount / from exec\n", ["x"]) == 0


def test_mount_ids_and_builder_are_read_from_the_plan() -> None:
    rendered = (
        "RUN --mount=type=cache,id=ns-pip-1000,target=/x,uid=1000 pip install a\n"
        "RUN --mount=type=secret,id=orchestrator-env --mount=type=cache,id=ns-uv-1000,"
        "target=/y uv pip install b\n"
        "RUN --mount=type=cache,id=ns-pip-1000,target=/x pip install c\n"
    )
    assert report.mount_ids(rendered) == ("ns-pip-1000", "ns-uv-1000")
    assert report.builder_of(["docker", "buildx", "build", "--builder", "b1", "."]) == "b1"
    assert report.builder_of(["docker", "buildx", "build", "."]) is None


def test_fallback_report_says_before_and_after_and_that_files_are_not_counted() -> None:
    made = report.CacheReport("cache-mount", "buildx-du", before=1_000_000, after=3_500_000)
    assert made.line() == (
        "orchestrate: cache: cache mounts held 1.0 MB before and 3.5 MB after "
        "(+2.5 MB; files not counted: the engine tells bytes only)"
    )
    assert made.as_dict()["mount_bytes_after"] == 3_500_000


def test_a_report_that_cannot_be_read_says_so_and_never_raises() -> None:
    def broken() -> int:
        raise RuntimeError("engine went away")

    assert report.safely("weigh", broken) is None
    watcher = report.Watcher("proxy", watch=accesslog.Watch("http://127.0.0.1:9/index/", 0, 0.0))
    made = watcher.finish()
    assert made.source == "unavailable"
    assert made.line() == "orchestrate: cache: cache report unavailable"


def test_off_and_external_proxies_say_no_cache_was_read() -> None:
    assert (
        report.Watcher.start("off").finish().line() == "orchestrate: cache: none used (proxy: off)"
    )
    external = report.Watcher.start("proxy", front=None).finish()
    assert "external proxy" in external.line()
    assert report.Watcher.start("cache-mount", rendered=["RUN pip install x"]).finish().note


RENDERED = ["RUN --mount=type=cache,id=ns-pip-0,target=/c pip install x"]


@pytest.fixture
def engine_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user cache and an engine socket of the test's own: observations start empty."""
    socket = tmp_path / "docker.sock"
    socket.touch()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    return socket


DU_COMMAND = "docker buildx du --verbose --filter type=exec.cachemount"


def du_of(size: str) -> str:
    """`buildx du --verbose` as Docker 28 prints it: the one mount of ``RENDERED``."""
    return (
        f"ID:\t\tm0\nSize:\t\t{size}\n"
        'Description:\tcached mount /c from exec pip install x with id "ns-pip-0"\n'
    )


@pytest.mark.serial
def test_the_mounts_are_weighed_beside_the_build_and_after_it(engine_cache: Path) -> None:
    weights = iter([du_of("1kB"), du_of("5kB")])

    def weigh() -> str:
        time.sleep(0.3)  # `buildx du` on Docker 28: 0.2-0.45 s
        return next(weights)

    fake = FakeEngine(captured={DU_COMMAND: weigh})
    with using(fake):
        started = time.monotonic()
        watcher = report.Watcher.start("cache-mount", rendered=RENDERED)
        assert time.monotonic() - started < 0.2, "the build does not wait for the weighing"
        made = watcher.finish()
    assert (made.source, made.before, made.after) == ("buildx-du", 1000, 5000)
    assert fake.verbs() == ["capture", "capture"]


def test_a_builder_seen_not_to_name_mounts_is_not_asked_again_until_it_changes(
    engine_cache: Path,
) -> None:
    blind = "ID:\t\tm0\nSize:\t\t1kB\nDescription:\tcached mount /c from exec pip install x\n"
    fake = FakeEngine(captured={DU_COMMAND: blind})  # BuildKit 0.8: no ids to tell apart
    with using(fake):
        first = report.Watcher.start("cache-mount", rendered=RENDERED).finish()
        assert (first.source, first.note) == ("not-told", report.NOT_TOLD)
        assert builder.observed(report.DU_NAMES_MOUNTS, None) is False
        seen = report.Watcher.start("cache-mount", rendered=RENDERED)
        assert (seen.source, seen.note, len(fake.calls)) == ("not-told", report.NOT_TOLD, 1)
        assert builder.observed(report.DU_NAMES_MOUNTS, "other") is None  # per builder
        engine_cache.unlink()
        engine_cache.touch()  # the engine restarted: its socket is new
        assert builder.observed(report.DU_NAMES_MOUNTS, None) is None
        report.Watcher.start("cache-mount", rendered=RENDERED).finish()
    assert len(fake.calls) == 2


# --- stats and prune ------------------------------------------------------------------------

NOW = 1_800_000_000.0


def listing_line(name: str, size: int, age: float, key: str) -> str:
    return cache_line(name, size, age, key, now=NOW)


LISTING = "\n".join(
    [
        listing_line("1", 100, 10, "/index/orch-demo-lib/|html"),
        listing_line("2", 5000, 7200, f"{WHEEL}|file"),
        listing_line("3", 9000, 60, "/index/Orch_Demo.App/orch_demo_app-2.0-py3-none-any.whl|file"),
        listing_line("4", 50, 30, "/index/orch-demo-app/|json"),
        f"{int(NOW)} {int(NOW)} 77 {CACHE_PATH}/a/bc/{'5':0>32}.0000000001 ",  # temporary
        "garbage",
    ]
)


def test_the_front_listing_is_parsed_into_files_and_pages() -> None:
    entries = stats.parse_listing(LISTING)
    assert [(e.kind, e.project) for e in entries] == [
        ("page", "orch-demo-lib"),
        ("file", "orch-demo-lib"),
        ("file", "orch-demo-app"),
        ("page", "orch-demo-app"),
    ]
    assert stats.summary(entries) == {
        "entries": 4,
        "bytes": 14150,
        "files": 2,
        "file_bytes": 14000,
        "pages": 2,
    }
    assert [vars(p) for p in stats.largest(entries, top=1)] == [
        {"project": "orch-demo-app", "files": 1, "bytes": 9050}
    ]
    assert stats.sizes_total("10\n20\n") == (2, 30)


def test_stats_count_hits_and_misses() -> None:
    found = span(line(WHEEL), line(WHEEL, cache="MISS", upstream="200"), line("/index/"))
    assert stats.traffic(found) == {
        "requests": 2,
        "hits": 1,
        "misses": 1,
        "failed": 0,
        "hit_bytes": 1000,
        "miss_bytes": 1000,
    }


def test_prune_by_age_takes_old_files_and_never_pages() -> None:
    entries = stats.parse_listing(LISTING)
    chosen = prune.choose(entries, now=NOW, older_than=3600, max_size=None)
    assert [e.size for e in chosen] == [5000]
    everything = prune.choose(entries, now=NOW, older_than=0, max_size=None)
    assert sorted(e.size for e in everything) == [5000, 9000]


def test_prune_by_size_takes_the_least_recently_used_files_first() -> None:
    entries = stats.parse_listing(LISTING)
    assert [e.size for e in prune.choose(entries, now=NOW, older_than=None, max_size=10_000)] == [
        5000
    ]
    assert [e.size for e in prune.choose(entries, now=NOW, older_than=None, max_size=0)] == [
        5000,
        9000,
    ]
    assert prune.choose(entries, now=NOW, older_than=None, max_size=10**9) == []


def test_prune_chooses_only_what_it_may_remove() -> None:
    """A listed path outside the cache directory was counted as removed and skipped."""
    entries = stats.parse_listing(LISTING)
    stray = replace(entries[1], path="/etc/" + entries[1].path.rsplit("/", 1)[-1])
    chosen = prune.choose([*entries, stray], now=NOW, older_than=0, max_size=None)
    assert stray not in chosen
    assert chosen == prune.choose(entries, now=NOW, older_than=0, max_size=None)


def test_prune_reports_what_it_removed() -> None:
    entries = stats.parse_listing(LISTING)
    done = prune.Pruned(tuple(entries[1:2]), tuple(entries[:1] + entries[2:]), dry_run=True)
    assert done.line() == (
        "would remove 1 files (5.0 kB) from the front's cache; 3 entries (9.2 kB) kept"
    )
    assert done.as_dict()["removed_projects"] == ["orch-demo-lib"]


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (["--older-than", "7 days"], "'7 days' is not a duration"),
        (["--max-size", "lots"], "'lots' is not a size"),
        ([], "give --older-than DURATION, --max-size SIZE, or both"),
    ],
)
def test_prune_bad_input_is_one_line_and_exit_2(args: list[str], part: str) -> None:
    assert_one_line_error(orchestrate("proxy", "prune", *args), 2, part)


def test_stats_print_for_people() -> None:
    entries = stats.parse_listing(LISTING)
    found = {
        "front": stats.summary(entries),
        "backend": {"files": 2, "bytes": 14000},
        "since": "2026-11-26T00:00:00+00:00",
        "traffic": stats.traffic(span(line(WHEEL))),
        "largest_projects": [vars(p) for p in stats.largest(entries)],
    }
    text = stats.text(found).splitlines()
    assert text[0] == "front cache:   2 files and 2 pages, 14.2 kB"
    assert text[2].startswith("since start:   1 hits (1.0 kB), 0 misses (0 B), 0 failed")
    assert text[4].split() == ["orch-demo-app", "9.1", "kB", "1", "files"]
    assert "unknown" in stats.text({**found, "traffic": None})


def test_a_run_reads_the_managed_proxys_log_only() -> None:
    from orchestrator.cli.run import _front  # noqa: PLC0415
    from orchestrator.profiles import ProxySettings  # noqa: PLC0415

    managed = ProxySettings(port=5123)
    assert _front(managed, "proxy") == managed.host_url
    assert _front(managed, "cache-volume") is None
    assert _front(ProxySettings(url="http://pypi.example:3141/root/pypi/"), "proxy") is None
