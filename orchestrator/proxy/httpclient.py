"""The proxy's HTTP client: plain http over a socket, https through http.client.

Every build probes the proxy (and notes its access log's end) over plain http on
loopback, and http.client (with the email package it parses headers with) costs a fifth
of orchestrator's overhead budget to import; a proxy behind https is rare enough to pay
for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

# One request (method, URL, headers, timeout) to its status, headers and body: ``exchange``
# below, or its stand-in that asks from the engine's side (``reach``).
Exchange = Callable[[str, str, dict[str, str], float], tuple[int, dict[str, str], bytes]]
# One request as an ``Exchange`` takes it: method, URL, headers, timeout.
Ask = tuple[str, str, dict[str, str], float]


def exchange(
    method: str, url: str, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """One request: status, headers (lower-case names) and body."""
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
) -> tuple[int, dict[str, str], bytes]:
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
    status_line, found = _head(head)
    if found.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return int(status_line.split()[1]), found, body


def _head(head: bytes) -> tuple[str, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(":", 1) for line in header_lines if ":" in line)
    return status_line, {key.strip().lower(): value.strip() for key, value in pairs}


def _complete(received: bytes, method: str) -> bool:
    """Whether the whole response is in: its head, and the body its Content-Length names
    (or a chunked body's last chunk)."""
    head, _, body = received.partition(b"\r\n\r\n")
    if method == "HEAD":
        return True
    _, found = _head(head)
    length = found.get("content-length", "")
    if length.isdigit():
        return len(body) >= int(length)
    if found.get("transfer-encoding", "").lower() == "chunked":
        return body.endswith(b"0\r\n\r\n")
    return False  # no length: read until the server closes (Connection: close)


def _unchunk(body: bytes) -> bytes:
    """A chunked body's data."""
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        data += rest[:size]
        body = rest[size + 2 :]
    return data


def _https(
    method: str, host: str, port: int, *, path: str, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    import http.client  # noqa: PLC0415

    connection = http.client.HTTPSConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()
