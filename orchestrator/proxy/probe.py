"""Is the proxy serving? Only an index page actually served is proof.

A port that accepts connections proves nothing (a hung proxy accepts them), and neither
does a 404 (a mistyped path answers one) or any 200 (a web page at a wrong path answers
one), so the probe asks for one project's page, as pip would, and counts a 200 with a
simple-API body type whose body lists distribution files. The probe runs on every build,
so what it imports is part of orchestrator's overhead budget (see ``_request``).

The managed proxy is asked through its cache first (``served``): its ``/offline/`` twin
of the page is answered by the front alone, so the probe never makes the front refresh a
page from the upstream (a probe is not a package request, and during an outage it must
not become one); only a page the cache does not hold yet is asked for through proxpi.
Every probe says who it is (``PROBE_AGENT``), so access-log readers can leave it out.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from orchestrator.errors import ProxyUnavailable
from orchestrator.facts.model import ProxyFacts
from orchestrator.log import get_logger
from orchestrator.proxy.httpclient import Ask, Exchange, exchange
from orchestrator.urls import offline_url, redact, split_credentials

SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
SIMPLE_TYPES = ("application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+html")
HTML_TYPE = "text/html"
log = get_logger(__name__)
PROBE_AGENT = "orchestrator-probe/1"
QUICK_TIMEOUT = 0.8  # seconds a running proxy gets to serve before a build falls back
IDENTITY_TIMEOUT = 0.4  # seconds the front gets to say who it is (it answers in milliseconds)
UPSTREAM_TIMEOUT = 0.8  # seconds the upstream gets to answer before it counts as down
UPSTREAM_REMEMBERED = 30.0  # seconds an upstream seen up is taken to be up, at most
# Seconds deciding between the proxy, offline and the fallback may take, the wait for a
# proxy this run creates aside: the upstream's check runs beside it, within its own timeout.
DECISION_BUDGET = 0.85
# A link to a distribution file, as a PEP 503 page has one per file.
_DIST_LINK = re.compile(
    r"""href\s*=\s*["'][^"'#]*\.(?:whl|tar\.gz|zip|tar\.bz2|tgz|egg)(?:#[^"']*)?["']""",
    re.IGNORECASE,
)


class Deadline:
    """The time a build's decision may take; ``None`` seconds: no bound (`proxy up`)."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    @property
    def bounded(self) -> bool:
        return self.end is not None

    def left(self, cap: float) -> float:
        """Seconds left, at most ``cap`` (``cap`` itself when unbounded)."""
        if self.end is None:
            return cap
        return max(0.0, min(cap, self.end - time.monotonic()))

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end


@dataclass(frozen=True)
class Probe:
    """What one request for an index page found."""

    ok: bool
    reason: str
    status: int | None = None
    seconds: float = 0.0
    timed_out: bool = False


def project_url(index_url: str, project: str) -> str:
    return f"{index_url.rstrip('/')}/{project}/"


def probe(index_url: str, project: str, timeout: float = 2.0, *, via: Exchange = exchange) -> Probe:
    """Fetch one project's index page through the proxy, as pip would; ``via`` is how
    this process reaches it (``reach``: its own loopback, or through the engine)."""
    _, url, headers, _ = page_ask(index_url, project, timeout)
    answer = _ask("GET", url, headers, timeout, where=url, via=via)
    if isinstance(answer, Probe):
        return answer
    status, content_type, body, took = answer
    if status == 200:
        why_not = not_an_index_page(content_type, body)
        if why_not is None:
            return Probe(True, f"served {url} ({status})", status, took)
        return Probe(False, f"{url} answered 200 but {why_not}", status, took)
    if status == 404:
        why = f"{url} answered 404: no project '{project}' there (check the URL, health_project)"
        return Probe(False, why, status, took)
    return Probe(False, f"{url} answered {status} ({content_type or 'no type'})", status, took)


def page_ask(index_url: str, project: str, timeout: float) -> Ask:
    """The request ``probe`` makes: the project's page, as pip asks for it."""
    bare, auth = split_credentials(index_url)
    headers = {"Accept": SIMPLE_ACCEPT, "User-Agent": PROBE_AGENT, **auth}
    return "GET", project_url(bare, project), headers, timeout


def identity_ask(index_url: str, timeout: float) -> Ask:
    """The request ``identity`` makes."""
    return "GET", _front_url(index_url, "/_orchestrator/id"), {"User-Agent": PROBE_AGENT}, timeout


def answers_asks(index_url: str, project: str, deadline: Deadline | None = None) -> list[Ask]:
    """The requests ``answers`` makes first when all is well (the front's identity, then
    its cached page): to be asked together where each trip is dear (``reach.ahead``)."""
    deadline = deadline or Deadline(None)
    return [
        identity_ask(index_url, max(0.05, deadline.left(IDENTITY_TIMEOUT))),
        page_ask(offline_url(index_url), project, max(0.05, deadline.left(QUICK_TIMEOUT))),
    ]


def not_an_index_page(content_type: str, body: bytes) -> str | None:
    """Why a 200 is not a project's simple-API page, None when it is one.

    JSON (PEP 691) must have its ``files`` list; HTML (PEP 503) must link at least one
    distribution file: a web page that happens to answer at a mistyped path has neither.
    """
    import json  # noqa: PLC0415

    kind = content_type.partition(";")[0].strip().lower()
    if kind == SIMPLE_TYPES[0]:
        try:
            data = json.loads(body)
        except ValueError:
            return "its JSON does not parse"
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            return "its JSON has no 'files' list (not a PEP 691 project page)"
        return None
    if kind in (SIMPLE_TYPES[1], HTML_TYPE):
        if _DIST_LINK.search(body.decode("utf-8", "replace")):
            return None
        return "its HTML links no distribution file (not a PEP 503 project page)"
    return f"its type is {kind or 'missing'}, not a simple-API page"


def served(index_url: str, project: str, timeout: float, *, via: Exchange = exchange) -> Probe:
    """A managed proxy's page for ``project``: from its cache alone if it has it, else
    through proxpi (which may ask the upstream), all within ``timeout``."""
    deadline = time.monotonic() + timeout
    cached = probe(offline_url(index_url), project, timeout, via=via)
    if cached.ok:
        return Probe(True, f"{cached.reason}, from its cache", cached.status, cached.seconds)
    if cached.status != 404:  # hung, refused or broken: asking again says nothing new
        return cached
    left = deadline - time.monotonic()
    if left <= 0:
        return Probe(False, f"{cached.reason}; no time left to ask through proxpi", 404)
    return probe(index_url, project, left, via=via)


@dataclass(frozen=True)
class Identity:
    """What ``/_orchestrator/id`` said: the front's settings digest, or why there is none."""

    said: dict[str, str] | None
    reason: str
    timed_out: bool = False

    @property
    def digest(self) -> str | None:
        return self.said.get("digest") if self.said else None

    @property
    def host(self) -> str | None:
        """The front container's host name: its short id, unless set otherwise."""
        return self.said.get("host") if self.said else None


def identity(index_url: str, timeout: float, *, via: Exchange = exchange) -> Identity:
    """What the front says about itself (``/_orchestrator/id``).

    A connection refused comes back at once; one accepted and never answered (a paused or
    hung front) comes back as ``timed_out`` after ``timeout``.
    """
    import json  # noqa: PLC0415

    _, url, headers, _ = identity_ask(index_url, timeout)
    try:
        status, _, body = _request("GET", url, headers, timeout, via=via)
        data = json.loads(body) if status == 200 else None
    except TimeoutError:
        return Identity(None, f"{url} accepted the connection but did not answer", True)
    except (OSError, ValueError, IndexError) as exc:
        return Identity(None, f"{url} unreachable: {exc}")
    if not isinstance(data, dict):
        return Identity(None, f"{url} answered {status}, not an orchestrator front")
    return Identity({str(k): str(v) for k, v in data.items()}, f"{url} answered")


def answers(
    index_url: str,
    project: str,
    digest: str,
    *,
    name: str,
    deadline: Deadline | None = None,
    host: str | None = None,
    via: Exchange = exchange,
) -> Probe | None:
    """The page the managed proxy serves, if its front says it runs with the settings of
    ``digest`` (and, given ``host``, that it is that very container); None when it does
    not say so (nothing listens, other settings, another container).

    Within a bounded ``deadline``, a front that accepts connections and does not answer,
    or says our digest and serves no page in time, is a ProxyUnavailable at once: asking
    Docker would not make it serve within the bound.
    """
    deadline = deadline or Deadline(None)
    said = identity(index_url, timeout=max(0.05, deadline.left(IDENTITY_TIMEOUT)), via=via)
    if said.timed_out and deadline.bounded:
        raise ProxyUnavailable(
            f"proxy '{name}' accepts connections but does not answer in "
            f"{IDENTITY_TIMEOUT:g} s (paused or hung: `orchestrate proxy status` says which)"
        )
    if said.digest is None or said.digest != digest or (host and said.host != host):
        return None
    checked = served(index_url, project, max(0.05, deadline.left(QUICK_TIMEOUT)), via=via)
    if checked.ok:
        return checked
    if checked.timed_out and deadline.bounded:
        raise ProxyUnavailable(f"proxy '{name}' does not serve: {checked.reason}")
    return None


def backend(index_url: str, timeout: float, *, via: Exchange = exchange) -> Probe:
    """Whether proxpi answers behind the front (its own health check: no upstream call)."""
    url = _front_url(index_url, "/_orchestrator/backend")
    headers = {"User-Agent": PROBE_AGENT}
    answer = _ask("GET", url, headers, timeout, where=url, who="proxpi", via=via)
    if isinstance(answer, Probe):
        return answer
    status, _, _, took = answer
    if status == 200:
        return Probe(True, f"proxpi answers ({took * 1000:.0f} ms)", status, took)
    return Probe(False, f"proxpi does not answer yet (the front says {status})", status, took)


def _front_url(index_url: str, path: str) -> str:
    parts = urlsplit(index_url)
    return f"{parts.scheme}://{parts.netloc}{path}"


def upstream(index_url: str, timeout: float, *, via: Exchange = exchange) -> Probe:
    """Whether the upstream index answers at all: a HEAD of its root, no page asked for."""
    bare, auth = split_credentials(index_url)
    headers = {"User-Agent": PROBE_AGENT, **auth}
    answer = _ask("HEAD", bare, headers, timeout, where=redact(bare), via=via)
    if isinstance(answer, Probe):
        return answer
    status, _, _, took = answer
    if status >= 500:
        return Probe(False, f"{redact(bare)} answered {status}", status, took)
    return Probe(True, f"{redact(bare)} answered {status}", status, took)


def _ask(
    method: str,
    url: str,
    headers: dict[str, str],
    timeout: float,
    *,
    where: str,
    who: str = "",
    via: Exchange = exchange,
) -> tuple[int, str, bytes, float] | Probe:
    """One request's status, content type, body and duration; or the failed Probe that
    says ``who`` (``where`` by default) did not answer in time, or ``where`` was not
    reached at all."""
    started = time.monotonic()
    try:
        status, content_type, body = _request(method, url, headers, timeout, via=via)
    except TimeoutError:
        return Probe(
            False, f"{who or where} did not answer in {timeout:.1f} s", None, timeout, True
        )
    except (OSError, ValueError, IndexError) as exc:
        return Probe(False, f"{where} unreachable: {exc}", None, time.monotonic() - started)
    return status, content_type, body, time.monotonic() - started


def _request(
    method: str, url: str, headers: dict[str, str], timeout: float, *, via: Exchange = exchange
) -> tuple[int, str, bytes]:
    """One request: its status, content type and body."""
    status, found, body = via(method, url, headers, timeout)
    return status, found.get("content-type", ""), body


def wait_ready(
    index_url: str,
    project: str,
    timeout: float,
    *,
    managed: bool = False,
    backend_too: bool = False,
    via: Exchange = exchange,
) -> Probe:
    """Probe with exponential backoff until served or out of time.

    ``managed``: our own front, asked through its cache first (``served``);
    ``backend_too``: proxpi must answer behind it as well (a proxy just created or
    started, whose front may serve its cache a moment before proxpi is up).
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        left = max(0.05, deadline - time.monotonic())
        if managed:
            found = served(index_url, project, timeout=min(5.0, left), via=via)
        else:
            found = probe(index_url, project, timeout=min(5.0, left), via=via)
        if found.ok and backend_too:
            left = min(5.0, max(0.05, deadline - time.monotonic()))
            behind = backend(index_url, timeout=left, via=via)
            if not behind.ok:
                found = behind
        if found.ok or time.monotonic() + delay > deadline:
            return found
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def upstream_remembered(
    index_url: str,
    timeout: float,
    remember: float = 30.0,
    *,
    via: Exchange = exchange,
    side: str = "",
) -> Probe:
    """``upstream``, with an answer that it is up remembered for ``remember`` seconds.

    Only "up" is remembered: a build right after the upstream came back must not be sent
    to the offline cache, and a build while it is down pays at most ``timeout``. ``via``
    and ``side``: asked from the engine's side (``reach``), remembered apart.
    """
    import json  # noqa: PLC0415

    from orchestrator import paths  # noqa: PLC0415

    memo = paths.fact_file("upstream", index_url, side)
    try:
        seen = json.loads(memo.read_text(encoding="utf-8"))
        if time.time() - float(seen["at"]) < remember:
            return Probe(True, str(seen["reason"]) + " (recently)", int(seen["status"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = upstream(index_url, timeout, via=via)
    if found.ok:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            record = {"at": time.time(), "reason": found.reason, "status": found.status}
            memo.write_text(json.dumps(record), encoding="utf-8")
        except OSError:
            pass
    return found


class UpstreamCheck(threading.Thread):
    """``upstream_remembered`` with the build's timeout, asked beside the proxy's check in a
    daemon thread: abandoned, not waited for, when its answer is not needed."""

    def __init__(
        self, index_url: str, remember: float, *, via: Exchange = exchange, side: str = ""
    ) -> None:
        super().__init__(daemon=True, name="upstream check")
        self.index_url = index_url
        self.remember = remember
        self.via = via
        self.side = side
        self.found = Probe(False, "not asked")
        self.seconds = 0.0
        self.start()

    def run(self) -> None:
        started = time.monotonic()
        self.found = upstream_remembered(
            self.index_url, UPSTREAM_TIMEOUT, self.remember, via=self.via, side=self.side
        )
        self.seconds = time.monotonic() - started

    def result(self) -> tuple[Probe, float]:
        self.join()
        return self.found, self.seconds


def remembered_for(index_ttl: float) -> float:
    """How long an upstream seen up is taken to be up: never past the index TTL, after
    which the front would refresh its pages from it."""
    return min(UPSTREAM_REMEMBERED, float(index_ttl))


def decided(
    found: ProxyFacts, upstream: UpstreamCheck | None, started: float, creating: float = 0.0
) -> ProxyFacts:
    """The proxy's facts with the upstream's answer, which matters only when the proxy
    serves (offline when the upstream does not answer), the decision logged."""
    proxy_seconds = time.monotonic() - started
    upstream_seconds = 0.0
    if found.healthy and upstream is not None:
        checked, upstream_seconds = upstream.result()
        if not checked.ok:
            found = replace(found, offline=checked.reason)
    _log_decision(started, proxy_seconds, upstream_seconds, creating, found)
    return found


def _log_decision(
    started: float,
    proxy_seconds: float,
    upstream_seconds: float,
    creating: float,
    found: ProxyFacts,
) -> None:
    """The decision's debug line: how long it took, what was exempt (creating a proxy and
    waiting for it), and what the bound covers: each side's own time, the proxy's without
    the creation."""
    log.debug(
        "proxy decided",
        seconds=round(time.monotonic() - started, 3),
        creating=round(creating, 3),
        bounded=round(max(upstream_seconds, proxy_seconds - creating), 3),
        upstream_seconds=round(upstream_seconds, 3),
        proxy_seconds=round(proxy_seconds, 3),
        healthy=found.healthy,
        offline=found.offline,
        reason=found.reason,
    )
