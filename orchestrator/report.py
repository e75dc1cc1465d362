"""The cache report: what the package cache did for one build, bake or run.

Through the managed proxy the numbers are the front's own records (its access log, read
from the byte where it stood when the command began): a file answered from the front's
cache was *served by the cache*; one the front passed on to proxpi was *fetched*, which
means from the upstream, unless proxpi still had its own copy (after `proxy prune`, which
empties only the front). A log is a span of time, not one build: builds running beside
this one write into it too. In the fallback, BuildKit's cache mounts are weighed before
and after (`docker buildx du`, which says bytes, not files). A report never fails the
command it reports on: whatever goes wrong reading it is a debug event, and the line says
the report is unavailable.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from orchestrator import log as logs
from orchestrator.proxy import accesslog
from orchestrator.units import human_bytes, parse_human

log = logs.get_logger(__name__)
T = TypeVar("T")
UNAVAILABLE = "cache report unavailable"
NOT_TOLD = (
    "cache mounts not measured: this engine's build cache (docker buildx du) does not say "
    "which cache mount a record is"
)
DU_NAMES_MOUNTS = "du names cache mounts"  # an observation of the builder (builder.observe)
_MOUNT = re.compile(r"--mount=(\S+)")
NO_MOUNT_OF_OURS = (
    "none weighed: no step of this build has a cache mount with an id (a step's own mount "
    "without id= is named by its target, which the engine's records do not show)"
)
_BUILDER = re.compile(r"--builder[= ](\S+)")


@dataclass(frozen=True)
class Tally:
    """Files and their bytes."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> Tally:
        return Tally(self.files + 1, self.bytes + size)

    def text(self) -> str:
        return f"{self.files} file{'' if self.files == 1 else 's'} ({human_bytes(self.bytes)})"


@dataclass(frozen=True)
class Traffic:
    """Files served by the front's cache, fetched through proxpi, or confirmed to an
    installer that had them in its own cache (a 304: pip's HTTP cache on its cache mount
    asks whether its copy is still good, and the front's cache says yes, sending nothing)."""

    cached: Tally = Tally()
    fetched: Tally = Tally()
    revalidated: Tally = Tally()

    def count(self, record: accesslog.Record) -> Traffic:
        if record.hit and record.status == 304:
            return replace(self, revalidated=self.revalidated.add(record.bytes))
        if record.hit:
            return replace(self, cached=self.cached.add(record.bytes))
        if record.asked_proxpi and not record.failed:
            return replace(self, fetched=self.fetched.add(record.bytes))
        return self

    @property
    def files(self) -> int:
        """Every file asked for, whatever the answer."""
        return self.cached.files + self.fetched.files + self.revalidated.files

    def as_dict(self) -> dict[str, int]:
        return {
            "cached_files": self.cached.files,
            "cached_bytes": self.cached.bytes,
            "fetched_files": self.fetched.files,
            "fetched_bytes": self.fetched.bytes,
            "revalidated_files": self.revalidated.files,
        }


@dataclass(frozen=True)
class CacheReport:
    """One command's report; ``source`` says where its numbers come from."""

    mode: str
    source: str  # access-log, buildx-du, none, unavailable
    traffic: Traffic | None = None
    installers: Mapping[str, Traffic] = field(default_factory=dict)
    pages: Traffic | None = None
    failed: int = 0
    before: int | None = None  # fallback: bytes the cache mounts held before
    after: int | None = None
    note: str = ""

    def line(self) -> str:
        """The one line on stderr."""
        if self.traffic is not None:
            return f"orchestrate: cache: {self._traffic_text(self.traffic)}"
        if self.before is not None and self.after is not None:
            return f"orchestrate: cache: {self._mounts_text(self.before, self.after)}"
        return f"orchestrate: cache: {self.note or UNAVAILABLE}"

    def _traffic_text(self, traffic: Traffic) -> str:
        pages = self.pages.files if self.pages else 0
        if not traffic.files and not pages and not self.failed:
            return "nothing asked of the proxy"
        if not traffic.files and pages and not self.failed:
            # The front marks files immutable: pip and uv keep them without asking again.
            return (
                f"no file asked for, {pages} index page{'' if pages == 1 else 's'} served "
                "(the installers' own caches had every file they needed)"
            )
        text = (
            f"{traffic.cached.text()} served from the cache, "
            f"{traffic.fetched.text()} fetched from the upstream"
        )
        if traffic.revalidated.files:
            text += f", {traffic.revalidated.files} already in the installers' own caches"
        if self.failed:
            text += f", {self.failed} request{'s' if self.failed > 1 else ''} failed"
        each = [
            f"{name} {t.cached.files} cached/{t.fetched.files} fetched"
            for name, t in self.installers.items()
        ]
        return text + (f" ({', '.join(each)})" if each else "")

    def _mounts_text(self, before: int, after: int) -> str:
        change = after - before
        sign = "+" if change >= 0 else "-"
        return (
            f"cache mounts held {human_bytes(before)} before and {human_bytes(after)} after "
            f"({sign}{human_bytes(abs(change))}; files not counted: the engine tells bytes only)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The report's fields for `--json` and the JSON log line."""
        data: dict[str, Any] = {"mode": self.mode, "source": self.source}
        if self.traffic is not None:
            data.update(self.traffic.as_dict())
            data["failed_requests"] = self.failed
            data["pages"] = self.pages.as_dict() if self.pages else {}
            data["installers"] = {k: v.as_dict() for k, v in self.installers.items()}
        if self.before is not None:
            data.update(mount_bytes_before=self.before, mount_bytes_after=self.after)
        if self.note:
            data["note"] = self.note
        return data


def from_span(mode: str, span: accesslog.Span) -> CacheReport:
    """Count a span's package requests: files in total and by installer, pages apart."""
    files = one_per_file([r for r in span.requests if r.kind == "file"])
    installers: dict[str, Traffic] = {}
    for record in files:
        installers[record.installer] = installers.get(record.installer, Traffic()).count(record)
    return CacheReport(
        mode=mode,
        source="access-log",
        traffic=_tally(files),
        installers=dict(sorted(installers.items())),
        pages=_tally(r for r in span.requests if r.kind == "page"),
        failed=sum(1 for r in span.requests if r.failed),
    )


def one_per_file(records: Sequence[accesslog.Record]) -> list[accesslog.Record]:
    """The file requests, a HEAD folded into its installer's GET of the same file: uv asks
    HEAD before it reads a wheel, and the front fetches a HEAD's miss whole (nginx turns it
    into a GET), so counting requests told 15 files (0 B) fetched and then the same 15
    served from the cache. The GET that follows such a HEAD is the fetch; a HEAD that no
    GET followed counts alone (the front fetched the file; nobody received it)."""
    heads = {(r.installer, r.path): r for r in records if r.method == "HEAD"}
    pending = {key for key, head in heads.items() if head.asked_proxpi}
    found = []
    for record in records:
        key = (record.installer, record.path)
        if record.method == "HEAD":
            continue
        if key in pending and record.hit:
            pending.discard(key)
            found.append(replace(record, cache="MISS", upstream_status=heads[key].upstream_status))
        else:
            found.append(record)
    return found + [heads[key] for key in sorted(pending)]


def _tally(records: Iterable[accesslog.Record]) -> Traffic:
    traffic = Traffic()
    for record in records:
        traffic = traffic.count(record)
    return traffic


def mount_ids(rendered: str | None) -> tuple[str, ...]:
    """The cache mounts a rendered Dockerfile declares, by id, in any order of options."""
    found = []
    for spec in _MOUNT.findall(rendered or ""):
        options = dict(item.partition("=")[::2] for item in spec.split(","))
        if options.get("type") == "cache" and options.get("id"):
            found.append(options["id"])
    return tuple(dict.fromkeys(found))


class NotTold(Exception):
    """The engine's build cache does not say which cache mount a record is."""


def mount_bytes(du_text: str, ids: Sequence[str]) -> int:
    """Bytes held by the cache mounts with these ids, from `docker buildx du --verbose`.

    Newer BuildKit describes a cache mount as ``cached mount <target> from <step> with id
    "<id>"`` (the frontend may prefix the id with a namespace and ``/``); BuildKit 0.8
    (Docker 20.10) leaves the id out, and mounts of one target cannot be told apart: then
    ``NotTold``, rather than a guess."""
    wanted = set(ids)
    total, named = 0, False
    for block in re.split(r"\n\s*\n", du_text):
        fields = dict(_field(line) for line in block.splitlines() if ":" in line)
        found = re.search(r'with id "([^"]*)"', fields.get("description", ""))
        size = parse_human(fields.get("size", ""))
        named = named or found is not None
        if found and found.group(1).rpartition("/")[2] in wanted and size is not None:
            total += size
    if not named and "cached mount" in du_text:
        raise NotTold
    return total


def _field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip().lower(), value.strip()


def safely(what: str, fn: Callable[[], T]) -> T | None:
    """``fn()``, or None with a debug event: a report must never fail what it reports."""
    try:
        return fn()
    except NotTold:
        raise
    except Exception as exc:  # any failure only makes the report unavailable
        log.debug("cache report unavailable", step=what, error=f"{type(exc).__name__}: {exc}")
        return None


def emit(report: CacheReport) -> None:
    """The report's line on stderr, as the command's other lines are printed."""
    logs.say("cache report", report.line(), cache=report.as_dict())


def builder_of(argv: Sequence[str]) -> str | None:
    """The builder a build's command names, if it names one."""
    found = _BUILDER.search(" ".join(argv))
    return found.group(1) if found else None


@dataclass(frozen=True)
class Watcher:
    """What a command noted before it began, to report on once it has ended."""

    mode: str
    watch: accesslog.Watch | None = None
    ids: tuple[str, ...] = ()
    builder: str | None = None
    weighing: Weighing | None = None
    note: str = ""
    source: str = "none"

    @classmethod
    def start(
        cls,
        mode: str,
        *,
        front: str | None = None,
        proxy: str = "",
        rendered: Sequence[str | None] = (),
        argv: Sequence[str] = (),
    ) -> Watcher:
        """Note the front's log size (proxy, offline) or weigh the cache mounts (fallback).
        The front of the managed proxy named ``proxy`` is asked as the decision found it
        reached: over this machine's loopback, or from the engine's side."""
        if mode in ("proxy", "offline"):
            if not front:
                return cls(mode, note="none: an external proxy (proxy.url) keeps its own records")
            from orchestrator.proxy import reach  # noqa: PLC0415 - only through the proxy

            known = reach.recalled_by(proxy, front) if proxy else None
            via, _ = reach.side(known)
            if known is not None and not known.local:
                return cls(mode, watch=accesslog.Watch.later(front, via=via))
            return cls(
                mode,
                watch=safely("note the access log", lambda: accesslog.Watch.start(front, via=via)),
            )
        if mode == "cache-mount":
            ids = tuple(dict.fromkeys(i for text in rendered for i in mount_ids(text)))
            if not ids:
                return cls(mode, note=NO_MOUNT_OF_OURS)
            return cls._weighed(mode, ids, builder_of(argv))
        return cls(mode, note=_NOTES.get(mode, UNAVAILABLE))

    @classmethod
    def _weighed(cls, mode: str, ids: tuple[str, ...], builder: str | None) -> Watcher:
        """Start weighing the mounts beside the build, unless this builder was seen not to
        tell them apart (Docker 20.10: remembered per engine start, so no call there)."""
        from orchestrator.facts import builder as builders  # noqa: PLC0415 - only the fallback

        if builders.observed(DU_NAMES_MOUNTS, builder) is False:
            return cls(mode, note=NOT_TOLD, source="not-told")
        return cls(mode, ids=ids, builder=builder, weighing=Weighing(_weigher(ids, builder)))

    def span(self) -> accesslog.Span | None:
        """What the front served since the start (None when it cannot be read)."""
        watch = self.watch
        return safely("read the access log", watch.span) if watch is not None else None

    def finish(self) -> CacheReport:
        """The report, or one that says it is unavailable."""
        return safely("make the report", self._finish) or CacheReport(self.mode, "unavailable")

    def _finish(self) -> CacheReport:
        if self.note:
            return CacheReport(self.mode, self.source, note=self.note)
        if self.watch is not None:
            span = self.span()
            return from_span(self.mode, span) if span else CacheReport(self.mode, "unavailable")
        return self._mounts()

    def _mounts(self) -> CacheReport:
        try:
            before = self.weighing.result() if self.weighing is not None else None
            after = safely("weigh the cache mounts", _weigher(self.ids, self.builder))
        except NotTold:
            from orchestrator.facts import builder as builders  # noqa: PLC0415 - only the fallback

            builders.observe(DU_NAMES_MOUNTS, self.builder, False)
            return CacheReport(self.mode, "not-told", note=NOT_TOLD)
        if before is None or after is None:
            return CacheReport(self.mode, "unavailable")
        return CacheReport(self.mode, "buildx-du", before=before, after=after)


class Weighing:
    """The mounts' weight before the build, taken on a thread while buildx starts: `buildx
    du` costs 0.2-0.45 s on Docker 28 (its CLI's start-up alone is 0.16 s), which the build
    would otherwise wait for. buildx reaches a step that uses a mount only after its own
    start-up, sending the context and the steps before it; BuildKit also keeps a mount's
    size from its last weighing until a step releases the mount."""

    def __init__(self, weigh: Callable[[], int]) -> None:
        self._found: list[int | None] = []
        self._failed: list[NotTold] = []
        self._thread = threading.Thread(target=self._run, args=(weigh,), daemon=True)
        self._thread.start()

    def _run(self, weigh: Callable[[], int]) -> None:
        try:
            self._found.append(safely("weigh the cache mounts", weigh))
        except NotTold as exc:
            self._failed.append(exc)

    def result(self) -> int | None:
        """The bytes weighed (None if the engine could not say); NotTold if it cannot tell
        mounts apart."""
        self._thread.join()
        if self._failed:
            raise self._failed[0]
        return self._found[0] if self._found else None


_NOTES = {
    "off": "none used (proxy: off)",
    "cache-volume": "the run's cache volume is not measured",
}


def _weigher(ids: Sequence[str], builder: str | None) -> Callable[[], int]:
    """Weigh the mounts; ``NotTold`` passes through ``safely`` to the caller."""

    def weigh() -> int:
        from orchestrator.engine import client as engine  # noqa: PLC0415 - only the fallback

        return mount_bytes(engine.build_cache_usage(builder), ids)

    return weigh
