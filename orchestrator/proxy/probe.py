"""Is the proxy serving? Only an index page actually served is proof.

A port that accepts connections proves nothing (a hung proxy accepts them), and neither
does a 404 (a mistyped path answers one), so the probe asks for one project's page, as
pip would, and counts a 200 with a simple-API body type. The probe runs on every build, so
what it imports is part of orchestrator's overhead budget (see ``_request``).
"""

from __future__ import annotations

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
        return Probe(False, f"{url} did not answer in {timeout:.1f} s", None, timeout, True)
    except (OSError, ValueError, IndexError) as exc:
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
    except (OSError, ValueError, IndexError):
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
        return Probe(
            False, f"{redact(bare)} did not answer in {timeout:.1f} s", None, timeout, True
        )
    except (OSError, ValueError, IndexError) as exc:
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
    """One request; plain http over a socket, https through http.client.

    Every build probes the proxy over plain http on loopback, and http.client (with the
    email package it parses headers with) costs a fifth of orchestrator's overhead budget
    to import; a proxy behind https is rare enough to pay for it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)  # an IPv6 host has colons
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        return _https(method, parts.hostname, port, path=path, headers=headers, timeout=timeout)
    return _http(method, parts.hostname, port, path=path, headers=headers, timeout=timeout)


def _http(
    method: str, host: str, port: int, *, path: str, headers: dict[str, str], timeout: float
) -> tuple[int, str, bytes]:
    import socket  # noqa: PLC0415

    name = f"[{host}]" if ":" in host else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {name}:{port}", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received, method):
            connection.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in header_lines if ":" in line)
    found = {key.strip().lower(): value.strip() for key, value in fields.items()}
    return int(status_line.split()[1]), found.get("content-type", ""), body


def _complete(received: bytes, method: str) -> bool:
    """Whether the whole response is in: its head, and the body its Content-Length names."""
    head, _, body = received.partition(b"\r\n\r\n")
    if method == "HEAD":
        return True
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False  # no length: read until the server closes (Connection: close)


def _https(
    method: str, host: str, port: int, *, path: str, headers: dict[str, str], timeout: float
) -> tuple[int, str, bytes]:
    import http.client  # noqa: PLC0415

    connection = http.client.HTTPSConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, headers=headers)
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
