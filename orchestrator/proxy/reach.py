"""Where the engine is, and so how this process reaches the managed proxy's front.

The engine publishes the front on its own loopback. Whether that loopback is this
process's too is not in the ``DOCKER_HOST`` string: a socket mounted into a Jenkins agent
looks local and is not, GitLab's ``docker:dind`` is reached over tcp, a remote context
over ssh. So it is decided from evidence, once per engine endpoint and proxy: the front
answers ``/_orchestrator/id`` with its container's host name (its short id), and when the
front this process's loopback reaches is the very container the engine reports, the
loopback is shared. Otherwise every question for the front (identity, readiness, health,
the access log) is asked from the engine's side: a small Python client run in the proxpi
container (which has Python, being proxpi), reaching the front by name on their network.
A look-alike proxy on this machine's loopback, even one with the same settings, is then
never taken for the engine's.

What was decided is kept in the facts directory under the engine endpoint and the
proxy's name, with the front's id: a build that finds the same front there again skips
the engine (the fast path); a front with another id is decided again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from orchestrator import paths
from orchestrator.engine import client as engine
from orchestrator.errors import HandledError
from orchestrator.facts.host import engine_endpoint
from orchestrator.proxy.front import LISTEN_PORT
from orchestrator.proxy.httpclient import Ask, Exchange, exchange
from orchestrator.proxy.probe import (
    IDENTITY_TIMEOUT,
    Deadline,
    Probe,
    answers_asks,
    identity,
)
from orchestrator.proxy.probe import answers as probe_answers

if TYPE_CHECKING:
    from orchestrator.profiles import ProxySettings

# The engine-side client's requests, passed in its environment by name (``engine.run_in``).
ASKS_VARIABLE = "ORCHESTRATE_ASKS"
# Run in the proxpi container: requests in turn, their answers as one JSON list, never a
# failure exit (a refused or timed-out request is an answer too, told apart by "error").
# After a timeout the rest are not asked ("skipped"): the front is hung, and each would
# wait its own timeout for nothing.
ENGINE_SIDE_CLIENT = """\
import base64, http.client, json, os, sys, urllib.parse
found = []
for method, url, headers, timeout in json.loads(os.environ[sys.argv[1]]):
    if found and found[-1].get("error") in ("timeout", "skipped"):
        found.append({"error": "skipped"})
        continue
    parts = urllib.parse.urlsplit(url)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        connection.request(method, path, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        found.append({"status": answer.status, "body": base64.b64encode(body).decode(),
                      "headers": {k.lower(): v for k, v in answer.getheaders()}})
    except TimeoutError:
        found.append({"error": "timeout"})
    except OSError as exc:
        found.append({"error": str(exc) or type(exc).__name__})
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Reach:
    """How this process asks the managed proxy's front, and why."""

    local: bool  # over this process's loopback; else from the engine's side
    exchange: Exchange
    evidence: str
    front_id: str = ""
    backend_id: str = ""

    @property
    def front_host(self) -> str:
        return front_host(self.front_id)


def front_host(front_id: str) -> str:
    """The host name a front answers with at ``/_orchestrator/id``: its container's short
    id, Docker's default host name, which is how a front is told from a look-alike."""
    return front_id[:12]


class ThroughEngine:
    """An ``Exchange`` made from the engine's side: in the proxpi container, to the front
    by name; a URL on the published loopback address is rewritten to it."""

    def __init__(self, name: str, host_url: str, backend_id: str) -> None:
        self.backend_id = backend_id
        self.published = urlsplit(host_url).netloc
        self.front = f"{name}:{LISTEN_PORT}"

    def __call__(
        self, method: str, url: str, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        [said] = self.many([(method, url, headers, timeout)])
        return _answer(said)

    def many(self, asks: Sequence[Ask]) -> list[dict[str, object]]:
        """Several requests in one ``docker exec``: each costs a round trip to the engine
        (some 0.07 s to a Docker 20.10 engine over tcp, seen here), which a build that asks
        the front several questions in a row would otherwise pay for each."""
        rewritten = [
            (method, self._to_front(url), headers, timeout)
            for method, url, headers, timeout in asks
        ]
        argv = ["python3", "-c", ENGINE_SIDE_CLIENT, ASKS_VARIABLE]
        passed = {ASKS_VARIABLE: json.dumps(rewritten)}  # headers may carry credentials
        try:
            said = engine.run_in(_asking(asks), self.backend_id, argv, passed)
        except HandledError as exc:
            # The proxy is gone or the engine said no: as unreachable as a refused port.
            raise OSError(f"from the engine's side: {exc}") from None
        return _answers(said, len(asks))

    def _to_front(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.netloc == self.published:
            return urlunsplit(parts._replace(netloc=self.front))
        return url


def _asking(asks: Sequence[Ask]) -> str:
    """What one exec asks, as its log line says it: each request's method and path."""
    paths = ", ".join(f"{method} {urlsplit(url).path}" for method, url, _, _ in asks)
    return f"ask the proxy from the engine's side: {paths}"


class Ahead:
    """An ``Exchange`` whose first questions were asked together, in one trip to the
    engine's side: each is answered from that trip when it is asked, any other (or one
    skipped after a timeout) as usual."""

    def __init__(self, via: ThroughEngine, asks: Sequence[Ask]) -> None:
        self.via = via
        self.known = {_key(ask): said for ask, said in zip(asks, via.many(asks), strict=True)}

    def __call__(
        self, method: str, url: str, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        said = self.known.pop(_key((method, url, headers, timeout)), None)
        if said is None or said.get("error") == "skipped":
            return self.via(method, url, headers, timeout)
        return _answer(said)


def ahead(via: Exchange, asks: Sequence[Ask]) -> Exchange:
    """``via``, with ``asks`` asked together first when ``via`` is the engine's side (over
    this machine's loopback each costs a millisecond: asked as they come)."""
    if not isinstance(via, ThroughEngine):
        return via
    try:
        return Ahead(via, asks)
    except OSError:
        return via  # each is asked again, and fails as it would have


def answers(
    known: Reach,
    index_url: str,
    project: str,
    digest: str,
    *,
    name: str,
    deadline: Deadline | None = None,
) -> Probe | None:
    """``probe.answers`` of the front as it was decided to be reached, its first questions
    asked together from the engine's side."""
    asks = answers_asks(index_url, project, deadline)
    return probe_answers(
        index_url,
        project,
        digest,
        name=name,
        deadline=deadline,
        host=known.front_host,
        via=ahead(known.exchange, asks),
    )


def _key(ask: Ask) -> str:
    method, url, headers, _ = ask
    return json.dumps([method, url, headers], sort_keys=True)


def _answers(said: str, count: int) -> list[dict[str, object]]:
    """The engine-side client's line: one answer per request."""
    try:
        found = json.loads(said.strip().splitlines()[-1])
    except (ValueError, IndexError):
        found = None
    if not isinstance(found, list) or len(found) != count:
        raise OSError(f"no answer from the engine's side: {said[-200:]!r}")
    return [item if isinstance(item, dict) else {"error": repr(item)} for item in found]


def _answer(found: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    """One answer, as ``exchange`` answers (or fails)."""
    if found.get("error") == "timeout":
        raise TimeoutError("timed out on the engine's side")
    if "error" in found:
        raise OSError(str(found["error"]))
    status, headers, body = found.get("status"), found.get("headers"), found.get("body")
    if not isinstance(status, int) or not isinstance(headers, dict) or not isinstance(body, str):
        raise OSError(f"a malformed answer from the engine's side: {str(found)[:200]!r}")
    return status, {str(k): str(v) for k, v in headers.items()}, base64.b64decode(body)


def decide(settings: ProxySettings, front_id: str, backend_id: str) -> Reach:
    """Whether the front this process's loopback reaches is the engine's ``front_id``;
    the answer is kept for the fast path."""
    said = identity(settings.host_url, IDENTITY_TIMEOUT)
    if said.host == front_host(front_id):
        found = Reach(
            True,
            exchange,
            f"{settings.host_url} is answered by the engine's front ({said.host})",
            front_id,
            backend_id,
        )
    else:
        seen = f"answered by another container ({said.host})" if said.host else said.reason
        found = Reach(
            False,
            ThroughEngine(settings.name, settings.host_url, backend_id),
            f"the engine is elsewhere: {settings.host_url} here is not its front ({seen})",
            front_id,
            backend_id,
        )
    _keep(settings.name, found)
    return found


def while_starting(settings: ProxySettings, front_id: str, backend_id: str) -> Exchange:
    """How to ask a front that may not listen yet: over this process's loopback when this
    very front answers there, or was decided to before and answers nothing else yet; else
    from the engine's side, which reaches it wherever the engine is."""
    said = identity(settings.host_url, IDENTITY_TIMEOUT)
    if said.host == front_host(front_id):
        return exchange
    known = recalled(settings)
    if said.host is None and known is not None and known.local and known.front_id == front_id:
        return known.exchange
    return ThroughEngine(settings.name, settings.host_url, backend_id)


def of_front(settings: ProxySettings, front_id: str, backend_id: str) -> Reach:
    """How to reach this very front: as decided before for it, or decided now."""
    known = recalled(settings)
    if known is not None and (known.front_id, known.backend_id) == (front_id, backend_id):
        return known
    return decide(settings, front_id, backend_id)


def side(known: Reach | None) -> tuple[Exchange, str]:
    """Where to ask from, as decided (this machine when nothing was decided yet): the front,
    and the upstream where proxpi asks it; and a name for that side to remember answers by."""
    if known is None or known.local:
        return exchange, ""
    return known.exchange, f"engine {known.backend_id[:12]}"


def recalled(settings: ProxySettings) -> Reach | None:
    """What was decided last for this engine and proxy, if anything."""
    return recalled_by(settings.name, settings.host_url)


def recalled_by(name: str, host_url: str) -> Reach | None:
    """``recalled``, for a caller that holds the proxy's name and URL but no settings (a
    remembered plan, which imports no pydantic)."""
    try:
        data = json.loads(_memo(name).read_text(encoding="utf-8"))
        front_id, backend_id = str(data["front"]), str(data["backend"])
        local, evidence = bool(data["local"]), str(data["evidence"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    via: Exchange = exchange if local else ThroughEngine(name, host_url, backend_id)
    return Reach(local, via, evidence, front_id, backend_id)


def _keep(name: str, found: Reach) -> None:
    record = {
        "front": found.front_id,
        "backend": found.backend_id,
        "local": found.local,
        "evidence": found.evidence,
    }
    try:
        path = _memo(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record), encoding="utf-8")
    except OSError:
        return  # only the next decision's speed is lost


def forget(settings: ProxySettings) -> None:
    """After the proxy was removed or replaced: the next build decides again."""
    _memo(settings.name).unlink(missing_ok=True)


def _memo(name: str) -> Path:
    return paths.fact_file("reach", engine_endpoint(), name)
