"""`orchestrate proxy stats`: the proxy's cache as a whole.

Two caches hold the packages (docs/design.md, "Outages"): the front's nginx cache, which
builds are served from, and proxpi's volume behind it. Their files are listed in their own
containers (`docker exec`, through python-on-whales), so nothing on the host needs
access to the volumes. The front names each file by the hash of its key and writes the key
(``/index/<project>/<file>|file``) into the file's header, which is how a file is told
from a page and attributed to its project. Hits and misses are the front's access log,
read over HTTP as builds read it, from the moment the front container started.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.engine import client as engine
from orchestrator.errors import BadInput, ProxyUnavailable
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import accesslog, reach, state
from orchestrator.proxy.front import CACHE_PATH
from orchestrator.proxy.spec import CACHE_DIR, backend_name
from orchestrator.units import human_bytes

if TYPE_CHECKING:
    from python_on_whales import Container

LOG_TIMEOUT = 30.0  # seconds to read the whole access log (at most 64 MB, on loopback)
TOP = 10
_ENTRY_NAME = re.compile(r"[0-9a-f]{32}")  # nginx's own files; temporary ones have a suffix
# One line per cache file: last access, last change, size, path, key. POSIX sh, any image.
LIST_FRONT = f"""\
cd {CACHE_PATH} 2>/dev/null || exit 0
find . -type f | while IFS= read -r f; do
  set -- $(stat -c '%X %Y %s' "$f" 2>/dev/null) || continue
  key=$(head -c 4096 "$f" 2>/dev/null | grep -a -m 1 '^KEY: ' || true)
  [ $# -eq 3 ] || continue
  printf '%s %s %s %s %s\\n' "$1" "$2" "$3" "{CACHE_PATH}/${{f#./}}" "${{key#KEY: }}"
done
"""
LIST_BACKEND = f"find {CACHE_DIR} -type f -exec stat -c '%s' {{}} + 2>/dev/null || true"


@dataclass(frozen=True)
class Entry:
    """One file of the front's cache: a package file or an index page."""

    path: str
    size: int
    used: float  # the later of its last access and last change (seconds since the epoch)
    key: str

    @property
    def kind(self) -> str:
        """``file`` (a distribution or its metadata) or ``page``; index pages are kept by
        prune, so a key nginx did not write (empty) counts as a page too."""
        return "file" if self.key.endswith("|file") else "page"

    @property
    def project(self) -> str | None:
        parts = self.key.partition("|")[0].removeprefix("/offline").split("/")
        return accesslog.normalize(parts[2]) if len(parts) > 2 and parts[1] == "index" else None


def parse_listing(text: str) -> list[Entry]:
    """The entries of ``LIST_FRONT``'s output; a line that is not one is skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ", 4)
        if len(fields) < 4 or not _ENTRY_NAME.fullmatch(fields[3].rpartition("/")[2]):
            continue
        try:
            used = max(float(fields[0]), float(fields[1]))
            entries.append(Entry(fields[3], int(fields[2]), used, (fields[4:] or [""])[0]))
        except ValueError:
            continue
    return entries


def sizes_total(text: str) -> tuple[int, int]:
    """Files and bytes from one size a line (``LIST_BACKEND``)."""
    sizes = [int(word) for word in text.split() if word.isdigit()]
    return len(sizes), sum(sizes)


@dataclass(frozen=True)
class ProjectSize:
    project: str
    files: int
    bytes: int


def largest(entries: Iterable[Entry], top: int = TOP) -> list[ProjectSize]:
    """Projects by the bytes of their cached files and pages, largest first."""
    files: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for entry in entries:
        if entry.project is None:
            continue
        sizes[entry.project] = sizes.get(entry.project, 0) + entry.size
        files[entry.project] = files.get(entry.project, 0) + (entry.kind == "file")
    ranked = sorted(sizes, key=lambda p: (-sizes[p], p))[:top]
    return [ProjectSize(p, files[p], sizes[p]) for p in ranked]


def traffic(span: accesslog.Span) -> dict[str, int]:
    """Hits and misses of package requests (pages and files), and the bytes of each."""
    requests = span.requests
    hits = [r for r in requests if r.hit]
    misses = [r for r in requests if not r.hit and not r.failed]
    return {
        "requests": len(requests),
        "hits": len(hits),
        "misses": len(misses),
        "failed": sum(1 for r in requests if r.failed),
        "hit_bytes": sum(r.bytes for r in hits),
        "miss_bytes": sum(r.bytes for r in misses),
    }


def summary(entries: list[Entry]) -> dict[str, int]:
    files = [e for e in entries if e.kind == "file"]
    return {
        "entries": len(entries),
        "bytes": sum(e.size for e in entries),
        "files": len(files),
        "file_bytes": sum(e.size for e in files),
        "pages": len(entries) - len(files),
    }


def managed(settings: ProxySettings) -> None:
    """Stats and prune act on the managed proxy's containers only."""
    if settings.url:
        raise BadInput(
            f"the proxy is external (proxy.url: {settings.url}): its cache is not ours to "
            "read or prune"
        )


def container(name: str) -> Container:
    """The running proxy container of that name; a stranger's is never touched (``find``
    says so)."""
    found = state.find(name)
    if found is None:
        raise ProxyUnavailable(f"no proxy container named '{name}' (orchestrate proxy up)")
    if state.state_of(found) != "running":
        raise ProxyUnavailable(f"the proxy container '{name}' is not running")
    return found


def front_entries(front_id: str) -> list[Entry]:
    """The front's cache, listed in its container."""
    listing = engine.execute("list the front's cache", front_id, ["sh", "-c", LIST_FRONT])
    return parse_listing(listing)


def gather(settings: ProxySettings) -> dict[str, Any]:
    """Everything `proxy stats` prints."""
    managed(settings)
    engine.ensure_engine()
    front = container(settings.name)
    entries = front_entries(front.id)
    backend = container(backend_name(settings))
    listing = engine.execute("list proxpi's cache", backend.id, ["sh", "-c", LIST_BACKEND])
    files, size = sizes_total(listing)
    started = front.state.started_at
    since = started.timestamp() if started else 0.0
    via = reach.of_front(settings, front.id, backend.id).exchange
    span = accesslog.read(settings.host_url, 0, LOG_TIMEOUT, via=via)
    return {
        "proxy": settings.name,
        "front": summary(entries),
        "backend": {"files": files, "bytes": size},
        "since": started.isoformat() if started else None,
        "traffic": traffic(span.since(since)) if span is not None else None,
        "largest_projects": [vars(p) for p in largest(entries)],
    }


def text(found: dict[str, Any]) -> str:
    """`proxy stats` for people."""
    front, backend, seen = found["front"], found["backend"], found["traffic"]
    lines = [
        f"front cache:   {front['files']} files and {front['pages']} pages, "
        f"{human_bytes(front['bytes'])}",
        f"proxpi cache:  {backend['files']} files, {human_bytes(backend['bytes'])}",
    ]
    if seen is None:
        lines.append("since start:   unknown (the access log could not be read)")
    else:
        lines.append(
            f"since start:   {seen['hits']} hits ({human_bytes(seen['hit_bytes'])}), "
            f"{seen['misses']} misses ({human_bytes(seen['miss_bytes'])}), "
            f"{seen['failed']} failed (front started {found['since']})"
        )
    lines += ["largest projects:"] + [
        f"  {p['project']:<30} {human_bytes(p['bytes']):>10}  {p['files']} files"
        for p in found["largest_projects"]
    ]
    return "\n".join(lines)
