"""The front's access log: records of a time span, and the one line a failed build gets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds import execute as execution
from orchestrator.plan.model import BuildPlan, Decision
from orchestrator.proxy import accesslog
from orchestrator.proxy.probe import PROBE_AGENT
from tests.support.front import Fronts, record


def line(uri: str, status: int = 200, cache: str = "HIT", upstream: str = "", **more: Any) -> str:
    record = {
        "time": "2025-11-26T00:00:00+00:00",
        "msec": 1764115200.123,
        "method": "GET",
        "uri": uri,
        "status": status,
        "bytes": 1234,
        "cache": cache,
        "upstream_status": upstream,
        "request_time": 0.002,
        "client": "127.0.0.1",
        "agent": "pip/23.0.1",
        **more,
    }
    return json.dumps(record)


def test_records_are_parsed_and_torn_lines_skipped() -> None:
    text = "\n".join([line("/index/demo/"), '{"msec": 1, "uri": ', "not json", line("/x")])
    records = accesslog.parse(text)
    assert [r.uri for r in records] == ["/index/demo/", "/x"]
    assert records[0].time == pytest.approx(1764115200.123)


@pytest.mark.parametrize(
    ("uri", "kind", "project", "offline"),
    [
        ("/index/Orch_Demo.App/", "page", "orch-demo-app", False),
        ("/offline/index/demo/", "page", "demo", True),
        ("/index/demo/demo-1.0-py3-none-any.whl", "file", "demo", False),
        ("/offline/index/demo/demo-1.0-py3-none-any.whl.metadata", "file", "demo", True),
        ("/index/", "other", None, False),
        ("/_orchestrator/id", "other", None, False),
        ("/index/demo/?format=json", "page", "demo", False),
    ],
)
def test_a_record_knows_its_kind_and_project(
    uri: str, kind: str, project: str | None, offline: bool
) -> None:
    [record] = accesslog.parse(line(uri))
    assert (record.kind, record.project, record.offline) == (kind, project, offline)


def test_only_what_was_passed_to_proxpi_could_reach_the_upstream() -> None:
    span = accesslog.Span(
        tuple(
            accesslog.parse(
                "\n".join(
                    [
                        line("/index/a/", cache="MISS", upstream="200"),
                        line("/index/a/a-1.whl", cache="HIT"),
                        line("/offline/index/b/", cache="STALE", upstream="502"),
                        line("/offline/index/c/", status=404, cache="MISS", upstream="502"),
                        line("/index/d/", agent=PROBE_AGENT, cache="MISS", upstream="200"),
                    ]
                )
            )
        )
    )
    assert [r.uri for r in span.fetched] == ["/index/a/"]  # the probe is not a package request
    assert [r.uri for r in span.hits] == ["/index/a/a-1.whl", "/offline/index/b/"]
    assert span.missing() == ["c"]


def test_missing_names_each_project_once_from_pages_and_files() -> None:
    span = accesslog.Span(
        tuple(
            accesslog.parse(
                "\n".join(
                    [
                        line("/offline/index/orch-x/", status=404, cache="MISS"),
                        line("/offline/index/orch-x/", status=404, cache="MISS"),
                        line("/offline/index/orch-y/orch_y-1.0-py3-none-any.whl", status=404),
                        line("/offline/index/orch-z/", status=200),
                    ]
                )
            )
        )
    )
    assert span.missing() == ["orch-x", "orch-y"]
    assert span.statuses("orch-x") == [404]


def test_the_log_is_served_next_to_any_index_url() -> None:
    assert accesslog.log_url("http://127.0.0.1:5000/offline/index/") == (
        "http://127.0.0.1:5000/_orchestrator/access.log"
    )
    assert accesslog.log_url("http://u:p@[::1]:5000/index/") == (
        "http://[::1]:5000/_orchestrator/access.log"
    )


def test_no_front_no_log() -> None:
    assert accesslog.size("http://127.0.0.1:9/index/", timeout=0.2) is None
    assert accesslog.read("http://127.0.0.1:9/index/", timeout=0.2) is None


def plan(mode: str, reason: str, outage: str | None = None) -> BuildPlan:
    return BuildPlan(
        outage=outage,
        profile="app",
        sources=(),
        mode=mode,  # type: ignore[arg-type]
        argv=("docker",),
        context=Path("."),
        dockerfile=Path("Dockerfile"),
        tags=(),
        decisions=(Decision("mode", mode, reason),),
    )


def test_offline_failure_is_one_line_naming_the_package_and_the_outage() -> None:
    reason = (
        "the upstream is down (http://10.231.4.10:8080/simple/ did not answer in 0.8 s): "
        "the proxy serves only what it has cached, and asks the upstream nothing"
    )
    span = accesslog.Span(tuple(accesslog.parse(line("/offline/index/orch-x/", status=404))))
    outage = "http://10.231.4.10:8080/simple/ did not answer in 0.8 s"
    message = execution.unserved_message(plan("offline", reason, outage), span, ["orch-x"])
    assert message == (
        "the build of profile 'app' failed: orch-x is not in the proxy's cache, and the "
        "upstream is down (offline mode: http://10.231.4.10:8080/simple/ did not answer in "
        "0.8 s)"
    )
    assert "\n" not in message
    two = execution.unserved_message(plan("offline", reason, outage), span, ["orch-x", "orch-y"])
    assert "orch-x, orch-y are not in the proxy's cache" in two


def test_proxy_failure_names_what_the_proxy_answered() -> None:
    span = accesslog.Span(
        tuple(accesslog.parse(line("/index/orch-x/", status=502, cache="MISS", upstream="500")))
    )
    message = execution.unserved_message(plan("proxy", "the proxy serves"), span, ["orch-x"])
    assert message == (
        "the build of profile 'app' failed: the proxy could not serve orch-x (answered 502): "
        "see `orchestrate proxy logs`"
    )


def test_the_end_of_the_log_is_read_and_more_of_it_when_all_of_that_is_recent(
    front: Fronts,
) -> None:
    """A build whose start was not noted (the engine is elsewhere) reads the log's end once
    it is over; when every record there is from the build's time, more is read."""
    now = time.time()
    old = [record(f"/index/old/old-{i}.whl", at=now - 600) for i in range(1500)]
    recent = [record(f"/index/new/new-{i}.whl", at=now) for i in range(1500)]
    served = front({})
    served.logs(*old, *recent)
    assert len(json.dumps(recent[0])) * len(recent) > accesslog.TAIL_BYTES, "more than the tail"
    span = accesslog.tail(served.url, now - 1.0)
    assert span is not None
    assert len(span.records) == len(recent)
    assert all(r.project == "new" for r in span.records)
    assert len(served.asked) == 2, "the tail, then eight times as much"


def test_a_short_log_is_read_whole_from_its_end(front: Fronts) -> None:
    now = time.time()
    served = front({})
    served.logs(record("/index/a/a-1.whl", at=now - 60), record("/index/b/b-1.whl", at=now))
    span = accesslog.tail(served.url, now - 1.0)
    assert span is not None
    assert [r.project for r in span.records] == ["b"]
    assert len(served.asked) == 1
