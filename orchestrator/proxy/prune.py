"""`orchestrate proxy prune`: remove package files from the front's cache, safely while
builds run.

What it removes, and why only there (docs/design.md, "Pruning the cache"):

- **The front's cache only.** Builds are served from it, and nginx copes with a cache file
  that vanished: it opens the file per request, and a missing one is a miss, fetched
  again through proxpi. A file being sent stays readable after it is unlinked (Linux keeps
  an open file until it is closed), so a download in progress completes.
- **Not proxpi's volume.** proxpi (1.3.1 and 1.4.0a1) keeps the list of its files in
  memory and does not look at the disk again: a file removed behind it is answered with an
  error (it sends a path that is gone) and its own eviction fails on it. Its volume is
  bounded by its own ``cache_size`` (least-frequently-used eviction) instead.
- **Files, not index pages.** Pages are small, refreshed after the index TTL, and what
  offline builds need to resolve anything; a page whose file was pruned still links it,
  and the front fetches that file again when it is asked for (in offline mode, it is not
  cached: the build names it).

Entries are chosen oldest first by their last use (the later of access and change time),
and removed with `rm -f` in the front's container, in batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.engine import client as engine
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import stats
from orchestrator.proxy.front import CACHE_PATH
from orchestrator.units import human_bytes

BATCH = 200  # paths per `rm` (well under any argument limit)


@dataclass(frozen=True)
class Pruned:
    """What prune removed (or, in a dry run, would remove), and what is left."""

    removed: tuple[stats.Entry, ...]
    kept: tuple[stats.Entry, ...]
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed_files": len(self.removed),
            "removed_bytes": sum(e.size for e in self.removed),
            "kept_entries": len(self.kept),
            "kept_bytes": sum(e.size for e in self.kept),
            "removed_projects": sorted({e.project for e in self.removed if e.project}),
        }

    def line(self) -> str:
        data = self.as_dict()
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {data['removed_files']} files ({human_bytes(data['removed_bytes'])}) "
            f"from the front's cache; {data['kept_entries']} entries "
            f"({human_bytes(data['kept_bytes'])}) kept"
        )


def choose(
    entries: Sequence[stats.Entry],
    *,
    now: float,
    older_than: float | None,
    max_size: int | None,
) -> list[stats.Entry]:
    """Package files unused for longer than ``older_than`` seconds, then the least
    recently used files until the whole cache (pages included) fits in ``max_size``; only
    files that ``remove`` will remove, so that what is reported removed was."""
    files = sorted(
        (e for e in entries if e.kind == "file" and removable(e.path)),
        key=lambda e: (e.used, e.path),
    )
    chosen = [e for e in files if older_than is not None and now - e.used >= older_than]
    if max_size is None:
        return chosen
    taken = {e.path for e in chosen}
    total = sum(e.size for e in entries) - sum(e.size for e in chosen)
    for entry in files:
        if total <= max_size:
            break
        if entry.path not in taken:
            chosen.append(entry)
            total -= entry.size
    return chosen


def prune(
    settings: ProxySettings,
    *,
    older_than: float | None,
    max_size: int | None,
    dry_run: bool = False,
) -> Pruned:
    """Choose in the profile's front and remove there; a dry run only lists."""
    stats.managed(settings)
    engine.ensure_engine()
    front = stats.container(settings.name)
    entries = stats.front_entries(front.id)
    chosen = choose(entries, now=time.time(), older_than=older_than, max_size=max_size)
    if not dry_run:
        remove(front.id, [e.path for e in chosen])
    removed = {e.path for e in chosen}
    kept = tuple(e for e in entries if e.path not in removed)
    return Pruned(tuple(chosen), kept, dry_run)


def removable(path: str) -> bool:
    """Only paths under the front's cache directory are ever removed (and so counted)."""
    return path.startswith(f"{CACHE_PATH}/") and ".." not in path


def remove(container_id: str, paths: Sequence[str]) -> None:
    """`rm -f` in the front's container; only paths under its cache directory."""
    safe = [p for p in paths if removable(p)]
    for start in range(0, len(safe), BATCH):
        batch = safe[start : start + BATCH]
        engine.execute("remove files from the front's cache", container_id, ["rm", "-f", *batch])
