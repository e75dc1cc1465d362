"""A copy of a project's uv.lock whose URLs point at the index a build uses.

``uv sync --locked`` accepts a lock only when every package's registry is one of the
configured indexes, compared as exact strings (uv 0.13, tried; uv#6349 asks for per-machine
index URLs and is open). A lock made against PyPI therefore fails once the proxy is the
index. The copy handed to the step (the user's file is never changed) names the proxy as
registry and the proxy's file URLs (``<index>/<project>/<file>``, proxpi's layout), so uv
validates it and downloads through the proxy, even with ``--frozen``, which reads URLs from
the lock alone (uv#19625).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

_PACKAGE = re.compile(r"(?m)^\[\[package\]\]\s*$")
_NAME = re.compile(r'(?m)^name = "([^"]+)"')
_REGISTRY = re.compile(r'source = \{ registry = "([^"]+)" \}')
_URL = re.compile(r'(\burl = )"([^"]+)"')


def normalized(url: str) -> str:
    return url.rstrip("/")


def rewrite(text: str, index: str, *, upstreams: Iterable[str], files: bool) -> str:
    """``text`` with packages from ``upstreams`` moved to ``index`` (exactly as spelled).

    With ``files``, their sdist and wheel URLs become the index's file URLs too; without,
    only the registry changes (the files are fetched where the lock says).
    """
    wanted = {normalized(u) for u in upstreams}
    chunks = _PACKAGE.split(text)
    headers = _PACKAGE.findall(text)
    out = [chunks[0]]
    for header, chunk in zip(headers, chunks[1:], strict=True):
        out.append(header + _package(chunk, index, wanted, files=files))
    return "".join(out)


def _package(chunk: str, index: str, wanted: set[str], *, files: bool) -> str:
    registry = _REGISTRY.search(chunk)
    name = _NAME.search(chunk)
    if registry is None or name is None or normalized(registry.group(1)) not in wanted:
        return chunk
    chunk = chunk.replace(registry.group(0), f'source = {{ registry = "{index}" }}', 1)
    if not files:
        return chunk
    base = f"{index.rstrip('/')}/{name.group(1)}/"
    return _URL.sub(lambda m: f'{m.group(1)}"{base}{_file_name(m.group(2))}"', chunk)


def _file_name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def registries(text: str) -> set[str]:
    """Every registry the lock's packages come from."""
    return {match.group(1) for match in _REGISTRY.finditer(text)}
