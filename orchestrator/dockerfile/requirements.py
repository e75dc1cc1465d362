"""Requirement files a RUN step installs from, and the index options written inside them.

pip-compile and ``uv pip compile`` write the index they resolved against into the file
they produce (``--index-url``, ``--extra-index-url``), and those lines are options to the
installer as much as the command line is. pip takes a file's ``--index-url`` over
PIP_INDEX_URL; uv keeps UV_DEFAULT_INDEX over it (astral-sh/uv#6407); both add a file's
``--extra-index-url`` to the indexes they ask. So a plan that says "through the proxy"
must read them, or it is not true for that step. Only files traced to the build context
(``sources``) can be read; nested ``-r`` lines inside a file are not followed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.dockerfile.commands import installers, segments
from orchestrator.dockerfile.parse import ParsedDockerfile, RunStep
from orchestrator.dockerfile.sources import join, source_of

_FILE_OPTION = re.compile(r"(?<![\w-])(?:-r|--requirement|-c|--constraint)(?:=|\s+)([^\s;&|]+)")
_PIP_SYNC_FILE = re.compile(r"(?<![\w-])([^\s;&|=-][^\s;&|=]*\.txt)\b")
_INDEX_LINE = re.compile(
    r"^\s*(--index-url|-i|--extra-index-url)(?:\s*=\s*|\s+)(\S+)", re.MULTILINE
)
SERVED = frozenset({"pip", "uv", "pip-tools"})


@dataclass(frozen=True)
class RequirementUse:
    """One requirement file a step installs from: who reads it, where, and its source."""

    line: int
    installer: str  # pip, uv or pip-tools (pip-sync, which runs pip)
    image_path: str
    source: str | None  # relative to the build context; None when it cannot be told


@dataclass(frozen=True)
class IndexLine:
    """An index option written in a requirement file."""

    number: int  # the file's line number, from 1
    option: str  # --index-url, -i or --extra-index-url
    url: str

    @property
    def replaces_index(self) -> bool:
        return self.option != "--extra-index-url"


def requirement_uses(parsed: ParsedDockerfile, run: RunStep) -> list[RequirementUse]:
    """The requirement and constraint files of every pip, uv pip and pip-sync command in
    ``run``, with their sources traced where possible."""
    found: dict[tuple[str, str], RequirementUse] = {}
    for segment in segments(run.text):
        tools = installers(segment) & SERVED
        if not tools:
            continue
        installer = "pip" if "pip" in tools else sorted(tools)[0]  # `pip install uv -r ...`
        for path in _files(segment, installer):
            image_path = join(run.workdir, path)
            key = (installer, image_path)
            if key not in found:
                source = source_of(parsed, run, image_path).path
                found[key] = RequirementUse(run.line, installer, image_path, source)
    return list(found.values())


def _files(segment: str, installer: str) -> list[str]:
    files = [m.group(1) for m in _FILE_OPTION.finditer(segment)]
    if installer == "pip-tools":
        after = segment.split("sync", 1)[-1]  # pip-sync or python -m piptools sync
        files += [m.group(1) for m in _PIP_SYNC_FILE.finditer(after)] or ["requirements.txt"]
    return [f for f in dict.fromkeys(files) if not f.startswith(("http:", "https:", "$"))]


def index_lines(text: str) -> list[IndexLine]:
    """The index options a requirement file sets, with their line numbers."""
    return [
        IndexLine(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _INDEX_LINE.finditer(text)
    ]
