"""Index URLs: hiding their credentials before anything is printed, and telling where they are."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

_CREDENTIALS = re.compile(r"(//)[^/\s]*@")


def redact(text: str) -> str:
    """Hide credentials (user:password@ or token@) in URLs before they are printed."""
    return _CREDENTIALS.sub(r"\1***@", text)


def redact_all(data: Any) -> Any:
    """``redact`` every string inside JSON-like data."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: redact_all(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redact_all(value) for value in data]
    return data


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without userinfo, and a Basic Authorization header for it (urllib ignores it)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    import base64  # noqa: PLC0415 - rare, and every build imports this module

    bare = urlunsplit(parts._replace(netloc=netloc))
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return bare, {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def with_userinfo(url: str, pair: str) -> str:
    """``url`` with ``user:password`` in it, each part quoted as a URL needs."""
    from urllib.parse import quote  # noqa: PLC0415

    user, _, password = pair.partition(":")
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    import ipaddress  # noqa: PLC0415 - planning only

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def offline_url(url: str) -> str:
    """The proxy front's cache-only twin of an index URL: ``/index/`` becomes
    ``/offline/index/`` (served from its cache, never asking the upstream)."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}/offline/{path}"
