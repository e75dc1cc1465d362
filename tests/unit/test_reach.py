"""Where the engine is (proxy/reach.py): decided from the front's own answer held against
the container the engine reports, remembered per engine endpoint, and the questions for
the front asked from the engine's side when its loopback is not this machine's."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from orchestrator import log as logs
from orchestrator.engine import process
from orchestrator.engine.api import using
from orchestrator.errors import DockerRefused
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import reach
from orchestrator.proxy.httpclient import Ask, exchange
from orchestrator.report import Watcher
from tests.support.engine import Call, FakeEngine
from tests.support.front import Fronts, closed_port, record

pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py
FRONT, BACKEND = "id-orchestrator-proxpi", "id-orchestrator-proxpi-backend"


def settings(port: int) -> ProxySettings:
    return ProxySettings(port=port, ca_bundle="off", health_project="demo")


def test_the_loopback_is_shared_when_the_engine_s_front_answers_there(front: Fronts) -> None:
    served = front({})
    served.identifies("d1", host=FRONT[:12])
    fake = FakeEngine()
    with using(fake):
        found = reach.decide(settings(served.port), FRONT, BACKEND)
    assert found.local
    assert found.evidence == f"{served.url} is answered by the engine's front ({FRONT[:12]})"
    assert fake.calls == [], "this machine's loopback alone is asked"


@pytest.mark.parametrize("who", ["another container", "nothing"])
def test_the_engine_is_elsewhere_when_its_front_does_not_answer_here(
    front: Fronts, who: str
) -> None:
    if who == "nothing":
        port = closed_port()
    else:
        look_alike = front({})
        look_alike.identifies("d1", host="0ther0ne0000")  # same settings, another container
        port = look_alike.port
    found = reach.decide(settings(port), FRONT, BACKEND)
    assert not found.local
    assert found.evidence.startswith("the engine is elsewhere: ")
    assert isinstance(found.exchange, reach.ThroughEngine)


def test_what_was_decided_is_remembered_per_engine_endpoint(
    front: Fronts, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = front({})
    served.identifies("d1", host=FRONT[:12])
    config = settings(served.port)
    reach.decide(config, FRONT, BACKEND)
    again = reach.recalled(config)
    assert again is not None
    assert (again.local, again.front_id, again.backend_id) == (True, FRONT, BACKEND)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.251.0.2:2375")
    assert reach.recalled(config) is None, "never across endpoints"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raise_(error: Exception) -> str:
    raise error


def answering(*said: dict[str, Any]) -> FakeEngine:
    """An engine whose engine-side client answers ``said``, one answer per request."""
    return FakeEngine(capturing=lambda argv, env: json.dumps(list(said)) + "\n")


def asked(call: Call) -> list[list[Any]]:
    """The requests one `docker exec` of the engine-side client carried (in its
    environment, by name: never in its argv)."""
    docker, verb, flag, name, ident, python, dash_c, _, variable = call.args
    assert (docker, verb, flag, python, dash_c) == ("docker", "exec", "-e", "python3", "-c")
    assert (ident, name, variable) == (BACKEND, reach.ASKS_VARIABLE, reach.ASKS_VARIABLE)
    return list(json.loads(call.kwargs["env"][name]))


def test_a_question_from_the_engine_s_side_goes_to_the_front_by_name() -> None:
    config = settings(5010)
    body = b'{"files": []}'
    answer = {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": "eyJmaWxlcyI6IFtdfQ==",
    }
    fake = answering(answer)
    via = reach.ThroughEngine(config.name, config.host_url, BACKEND)
    with using(fake):
        found = via("GET", "http://127.0.0.1:5010/offline/index/demo/", {"Accept": "x"}, 0.8)
    assert found == (200, {"content-type": "application/json"}, body)
    [call] = fake.calls
    assert asked(call) == [  # in proxpi's container, which has Python
        ["GET", "http://orchestrator-proxpi:5000/offline/index/demo/", {"Accept": "x"}, 0.8]
    ]
    assert "Accept" not in " ".join(call.args), "the requests are in no argv"


def test_questions_asked_ahead_take_one_trip_to_the_engine_and_are_answered_from_it() -> None:
    identity = {"status": 200, "headers": {}, "body": base64.b64encode(b'{"digest": "d"}').decode()}
    page = {"status": 404, "headers": {"content-type": "text/plain"}, "body": ""}
    fake = answering(identity, page)
    via = reach.ThroughEngine("px", "http://127.0.0.1:5000/index/", BACKEND)
    first: Ask = ("GET", "http://127.0.0.1:5000/_orchestrator/id", {"User-Agent": "a"}, 0.4)
    second: Ask = ("GET", "http://127.0.0.1:5000/offline/index/demo/", {"Accept": "x"}, 0.8)
    with using(fake):
        asked = reach.ahead(via, [first, second])
        assert asked(*first) == (200, {}, b'{"digest": "d"}')
        assert asked(*second)[0] == 404
    assert len(fake.calls) == 1, "both in one docker exec"
    assert reach.ahead(exchange, [first]) is exchange, "no trip to save here"


def test_a_question_skipped_after_a_timeout_is_asked_again_when_it_is_asked() -> None:
    fake = answering({"error": "timeout"}, {"error": "skipped"})
    via = reach.ThroughEngine("px", "http://127.0.0.1:5000/index/", BACKEND)
    first: Ask = ("GET", "http://127.0.0.1:5000/_orchestrator/id", {}, 0.4)
    second: Ask = ("GET", "http://127.0.0.1:5000/offline/index/demo/", {}, 0.8)
    with using(fake):
        asked = reach.ahead(via, [first, second])
        with pytest.raises(TimeoutError):
            asked(*first)
        with pytest.raises(OSError, match="no answer"):
            asked(*second)  # asked again on its own: the fake's two answers are not one
    assert len(fake.calls) == 2


@pytest.mark.parametrize(
    ("said", "error"),
    [
        ({"error": "timeout"}, TimeoutError),
        ({"error": "[Errno 111] Connection refused"}, OSError),
    ],
)
def test_a_failure_on_the_engine_s_side_is_the_failure_a_probe_knows(
    said: dict[str, str], error: type[Exception]
) -> None:
    via = reach.ThroughEngine("px", "http://127.0.0.1:5000/index/", BACKEND)
    with using(answering(said)), pytest.raises(error):
        via("GET", "http://127.0.0.1:5000/_orchestrator/id", {}, 0.4)


def test_a_proxy_gone_from_the_engine_is_unreachable_not_a_crash() -> None:
    via = reach.ThroughEngine("px", "http://127.0.0.1:5000/index/", BACKEND)
    missing = DockerRefused("docker refused to exec: exit status 1", detail="No such container")
    gone = FakeEngine(capturing=lambda argv, env: raise_(missing))
    with using(gone), pytest.raises(OSError, match="from the engine's side"):
        via("GET", "http://127.0.0.1:5000/_orchestrator/id", {}, 0.4)


def test_the_cache_report_reads_the_access_log_from_the_engine_s_side(front: Fronts) -> None:
    """A build whose engine is elsewhere counts what its own proxy served, not what a
    proxy on this machine's loopback did (issue 20)."""
    here = front({})  # a proxy of this machine, whose log must not be read
    here.logs(record("/index/demo/demo-1.0-py3-none-any.whl", size=999))
    config = settings(here.port)
    assert not reach.decide(config, FRONT, BACKEND).local  # it answers with no host of ours
    log = (json.dumps(record("/index/orch/orch-1.0-py3-none-any.whl", size=5000)) + "\n").encode()

    def engine_side(argv: tuple[str, ...], env: dict[str, str]) -> str:
        [[method, url, headers, _]] = json.loads(env[reach.ASKS_VARIABLE])
        assert url.startswith("http://orchestrator-proxpi:5000/_orchestrator/access.log")
        assert (method, headers["Range"]) == ("GET", "bytes=-262144"), "its end, once, after"
        whole = f"bytes 0-{len(log) - 1}/{len(log)}"
        said = {"status": 206, "headers": {"content-range": whole}, "body": b64(log)}
        return json.dumps([said]) + "\n"

    fake = FakeEngine(capturing=engine_side)
    with using(fake):
        watcher = Watcher.start("proxy", front=config.host_url, proxy=config.name)
        made = watcher.finish()
    assert made.source == "access-log"
    assert made.traffic is not None
    assert (made.traffic.cached.files, made.traffic.cached.bytes) == (1, 5000)
    assert [len(asked(c)) for c in fake.made("capture")] == [1], "one trip"


def test_a_repeated_build_asks_the_front_s_identity_and_page_in_one_trip() -> None:
    """The check every repeated build makes (``reach.answers``: the remembered plan's and
    the proxy's quick path alike), from the engine's side: one docker exec, not two."""
    said = {"digest": "d1", "host": FRONT[:12]}
    identity = {"status": 200, "headers": {}, "body": b64(json.dumps(said).encode())}
    html = b'<a href="demo-1.0-py3-none-any.whl#sha256=ab">demo-1.0-py3-none-any.whl</a>'
    page = {"status": 200, "headers": {"content-type": "text/html"}, "body": b64(html)}
    fake = answering(identity, page)
    known = reach.Reach(
        False, reach.ThroughEngine("px", "http://127.0.0.1:5000/index/", BACKEND), "", FRONT
    )
    with using(fake):
        found = reach.answers(known, "http://127.0.0.1:5000/index/", "demo", "d1", name="px")
    assert found is not None
    assert found.ok, found.reason
    [call] = fake.calls
    assert [url for _, url, _, _ in asked(call)] == [
        "http://px:5000/_orchestrator/id",
        "http://px:5000/offline/index/demo/",
    ]


def test_an_index_s_credentials_asked_from_the_engine_s_side_are_in_no_argv_and_no_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The upstream check from the engine's side carries the index's Authorization header:
    passed to `docker exec` by name (-e), its value is in no command line (``ps``, the
    engine's exec record) and in no log line, even at -v."""
    fake = answering({"status": 200, "headers": {}, "body": ""})
    via = reach.ThroughEngine("px", "http://127.0.0.1:5000/index/", BACKEND)
    with using(fake):
        via("HEAD", "https://index.example/simple/", {"Authorization": "Basic c2VjcmV0"}, 0.8)
    [call] = fake.calls
    assert "c2VjcmV0" not in " ".join(call.args)
    assert asked(call)[0][2] == {"Authorization": "Basic c2VjcmV0"}, "it is in the env"
    logs.configure("json", verbose=True)
    try:  # the real capture: the value reaches the command, and no log line
        said = process.capture("test", ["sh", "-c", 'echo "$ASKS"', "ASKS"], {"ASKS": "c2VjcmV0"})
    finally:
        logs.configure()
    assert said == "c2VjcmV0\n"
    logged = capsys.readouterr().err
    assert '"event": "docker"' in logged, "the command is logged"
    assert "c2VjcmV0" not in logged, "its environment is not"
