"""Is the proxy serving? Only an index page actually served is proof.

A port that accepts connections proves nothing (a hung proxy accepts them), and neither
does a 404 (a mistyped path answers one), so the probe asks for one project's page, as
pip would, and counts a 200 with a simple-API body type. http.client rather than
urllib.request: the probe runs on every build and the lighter import is part of
orchestrator's overhead budget.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.urls import redact, split_credentials

SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
SIMPLE_TYPES = ("application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+html")
HTML_TYPE = "text/html"


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


def probe(index_url: str, project: str, timeout: float = 2.0) -> Probe:
    """Fetch one project's index page through the proxy, as pip would."""
    bare, auth = split_credentials(index_url)
    url = project_url(bare, project)
    started = time.monotonic()
    try:
        status, content_type = _get(url, {"Accept": SIMPLE_ACCEPT, **auth}, timeout)
    except TimeoutError:
        return Probe(False, f"{url} did not answer in {timeout:g} s", None, timeout, True)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Probe(False, f"{url} unreachable: {exc}", None, time.monotonic() - started)
    took = time.monotonic() - started
    if status == 200 and content_type.startswith((*SIMPLE_TYPES, HTML_TYPE)):
        return Probe(True, f"served {url} ({status})", status, took)
    if status == 404:
        why = f"{url} answered 404: no project '{project}' there (check the URL, health_project)"
        return Probe(False, why, status, took)
    return Probe(False, f"{url} answered {status} ({content_type or 'no type'})", status, took)


def identity(index_url: str, timeout: float) -> dict[str, str] | None:
    """What the front says about itself (``/_orchestrator/id``), None if it says nothing."""
    import json  # noqa: PLC0415

    parts = urlsplit(index_url)
    url = f"{parts.scheme}://{parts.netloc}/_orchestrator/id"
    try:
        status, _, body = _request("GET", url, {}, timeout)
        data = json.loads(body) if status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def answers(index_url: str, project: str, digest: str, timeout: float) -> Probe | None:
    """The proxy's probe, if its front says it runs with the settings of ``digest``."""
    said = identity(index_url, timeout=timeout)
    if said is None or said.get("digest") != digest:
        return None
    checked = probe(index_url, project, timeout)
    return checked if checked.ok else None


def upstream(index_url: str, timeout: float) -> Probe:
    """Whether the upstream index answers at all: a HEAD of its root, no page asked for."""
    bare, auth = split_credentials(index_url)
    started = time.monotonic()
    try:
        status, _, _ = _request("HEAD", bare, auth, timeout)
    except TimeoutError:
        return Probe(False, f"{redact(bare)} did not answer in {timeout:g} s", None, timeout, True)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Probe(False, f"{redact(bare)} unreachable: {exc}", None, time.monotonic() - started)
    took = time.monotonic() - started
    if status >= 500:
        return Probe(False, f"{redact(bare)} answered {status}", status, took)
    return Probe(True, f"{redact(bare)} answered {status}", status, took)


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    status, content_type, _ = _request("GET", url, headers, timeout)
    return status, content_type


def _request(
    method: str, url: str, headers: dict[str, str], timeout: float
) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    port = parts.port or (443 if parts.scheme == "https" else 80)  # an IPv6 host has colons
    connection = connection_type(parts.hostname, port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, response.getheader("Content-Type", "") or "", body
    finally:
        connection.close()


def wait_ready(index_url: str, project: str, timeout: float) -> Probe:
    """Probe with exponential backoff until served or out of time."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        left = max(0.1, deadline - time.monotonic())
        found = probe(index_url, project, timeout=min(5.0, left))
        if found.ok or time.monotonic() + delay > deadline:
            return found
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def upstream_remembered(index_url: str, timeout: float, remember: float = 30.0) -> Probe:
    """``upstream``, with an answer that it is up remembered for ``remember`` seconds.

    Only "up" is remembered: a build right after the upstream came back must not be sent
    to the offline cache, and a build while it is down pays at most ``timeout``.
    """
    import hashlib  # noqa: PLC0415
    import json  # noqa: PLC0415

    from orchestrator import paths  # noqa: PLC0415

    key = hashlib.sha256(index_url.encode()).hexdigest()[:16]
    memo = paths.facts_dir() / f"upstream-{key}.json"
    try:
        seen = json.loads(memo.read_text(encoding="utf-8"))
        if time.time() - float(seen["at"]) < remember:
            return Probe(True, str(seen["reason"]) + " (recently)", int(seen["status"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = upstream(index_url, timeout)
    if found.ok:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            record = {"at": time.time(), "reason": found.reason, "status": found.status}
            memo.write_text(json.dumps(record), encoding="utf-8")
        except OSError:
            pass
    return found
