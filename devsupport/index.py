"""Write a static "simple" index tree for a directory of distribution files, in both of
the formats PyPI serves: PEP 503 HTML and PEP 691 JSON.

Layout written under ``root``::

    simple/index.html                 one <a href="<name>/"> per project
    simple/index.json                 {"meta": {"api-version": "1.1"}, "projects": [...]}
    simple/<normalized-name>/index.html
                                      one <a href="../../files/<file>#sha256=<hex>">
    simple/<normalized-name>/index.json
                                      the same files, with what only JSON carries (PEP 700):
                                      each file's size and upload-time, the project's versions
    files/<file>                      the distributions themselves

The JSON page says what PyPI's does for these files: ``hashes``, ``requires-python`` and
``core-metadata`` (with PyPI's older ``data-dist-info-metadata``) where the file has them,
``yanked`` (false, true or the reason), ``size`` and ``upload-time``. A file's upload time is
what the caller gives for it, else ``DEFAULT_UPLOAD_TIME``: a test of ``--exclude-newer``
gives two versions two dates. The HTML is what it was before the JSON existed, plus
``data-yanked`` on a yanked file.

The tree is made world-readable, because the upstream container serves it as a non-root user
from a read-only bind mount.
"""

from __future__ import annotations

import email.parser
import html
import json
import os
import shutil
import urllib.parse
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from devsupport.wheels import normalize_name, sha256_file

__all__ = [
    "API_VERSION",
    "DEFAULT_UPLOAD_TIME",
    "IndexedFile",
    "project_of",
    "upload_time_text",
    "version_of",
    "write_simple_index",
]

API_VERSION = "1.1"  # PEP 700: size, upload-time and versions are there
DEFAULT_UPLOAD_TIME = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

_SDIST_SUFFIXES = (".tar.gz", ".zip")
_DIR_MODE = 0o755
_FILE_MODE = 0o644


@dataclass(frozen=True)
class IndexedFile:
    """One distribution file as listed on its project page."""

    project: str
    filename: str
    sha256: str
    requires_python: str | None = None
    metadata_sha256: str | None = None
    size: int = 0
    upload_time: datetime = DEFAULT_UPLOAD_TIME
    yanked: bool | str = False  # a non-empty string: yanked, for that reason
    version: str = ""


def project_of(filename: str) -> str:
    """Normalised project name of a wheel or sdist file name, or ValueError."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):
            raise ValueError(f"not a wheel file name: {filename!r}")
        return normalize_name(parts[0])
    for suffix in _SDIST_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            if "-" not in stem:
                raise ValueError(f"not an sdist file name: {filename!r}")
            return normalize_name(stem.rsplit("-", 1)[0])
    raise ValueError(f"not a distribution file name: {filename!r}")


def version_of(filename: str) -> str:
    """The version a wheel or sdist file name carries, or ValueError."""
    project_of(filename)
    if filename.endswith(".whl"):
        return filename[: -len(".whl")].split("-")[1]
    stem = next(filename[: -len(s)] for s in _SDIST_SUFFIXES if filename.endswith(s))
    return stem.rsplit("-", 1)[1]


def upload_time_text(moment: datetime) -> str:
    """PEP 700's form, as PyPI writes it: UTC, microseconds, a ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("an upload time needs a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _wheel_metadata(path: Path) -> bytes | None:
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            parts = member.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return archive.read(member)
    return None


def _copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    target.chmod(_FILE_MODE)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(_FILE_MODE)


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(_DIR_MODE)


def _page(title: str, links: list[str]) -> str:
    body = "\n".join(f"    {link}<br />" for link in links)
    return (
        "<!DOCTYPE html>\n"
        "<html>\n"
        "  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0">\n'
        f"    <title>{html.escape(title)}</title>\n"
        "  </head>\n"
        "  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n"
        f"{body}\n"
        "  </body>\n"
        "</html>\n"
    )


def _file_url(entry: IndexedFile) -> str:
    return f"../../files/{urllib.parse.quote(entry.filename)}"


def _file_link(entry: IndexedFile) -> str:
    href = f"{_file_url(entry)}#sha256={entry.sha256}"
    attributes = [f'href="{html.escape(href)}"']
    if entry.requires_python:
        attributes.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
    if entry.metadata_sha256:
        value = f"sha256={entry.metadata_sha256}"
        attributes.append(f'data-core-metadata="{value}"')
        attributes.append(f'data-dist-info-metadata="{value}"')
    if entry.yanked:
        reason = entry.yanked if isinstance(entry.yanked, str) else ""
        attributes.append(f'data-yanked="{html.escape(reason)}"')
    return f"<a {' '.join(attributes)}>{html.escape(entry.filename)}</a>"


def _file_json(entry: IndexedFile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": entry.filename,
        "url": _file_url(entry),
        "hashes": {"sha256": entry.sha256},
    }
    if entry.requires_python:
        data["requires-python"] = entry.requires_python
    if entry.metadata_sha256:
        # PEP 714's key, and the one PyPI still writes beside it for older clients
        data["core-metadata"] = {"sha256": entry.metadata_sha256}
        data["data-dist-info-metadata"] = {"sha256": entry.metadata_sha256}
    data["size"] = entry.size
    data["upload-time"] = upload_time_text(entry.upload_time)
    data["yanked"] = entry.yanked
    return data


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)


def _project_json(name: str, entries: list[IndexedFile]) -> dict[str, Any]:
    versions = sorted({entry.version for entry in entries}, key=_version_key)
    return {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "files": [_file_json(entry) for entry in entries],
        "versions": versions,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _write_text(path, json.dumps(data, indent=1) + "\n")


def write_simple_index(
    wheels_dir: Path | str,
    root: Path | str,
    *,
    core_metadata: bool = False,
    upload_times: Mapping[str, datetime] | None = None,
    yanked: Mapping[str, bool | str] | None = None,
) -> None:
    """Write the simple tree for every ``*.whl`` / sdist in ``wheels_dir`` under ``root``.

    Files are hard-linked (or copied) into ``root/files/``; ``root/simple/`` is rewritten from
    scratch, so calling this again after adding wheels gives an up-to-date index.  With
    ``core_metadata`` each wheel's METADATA is also published as ``<file>.metadata`` and
    advertised with ``data-core-metadata`` (PEP 658/714), as PyPI does.  ``upload_times``
    and ``yanked`` are keyed by file name; a file named in neither was uploaded at
    ``DEFAULT_UPLOAD_TIME`` and is not yanked.  A name that is no file here is a mistake
    (ValueError), not silently a file that keeps the default.
    """
    upload_times = dict(upload_times or {})
    yanked = dict(yanked or {})
    source = Path(wheels_dir).resolve()
    root = Path(root)
    _mkdir(root)
    files_dir = root / "files"
    simple_dir = root / "simple"
    in_place = files_dir.exists() and files_dir.resolve() == source

    distributions = sorted(
        path
        for path in source.iterdir()
        if path.is_file() and path.name.endswith((".whl", *_SDIST_SUFFIXES))
    )
    unknown = (upload_times.keys() | yanked.keys()) - {path.name for path in distributions}
    if unknown:
        raise ValueError(f"no such distribution in {source}: {', '.join(sorted(unknown))}")
    if not in_place:
        if files_dir.exists():
            shutil.rmtree(files_dir)
        _mkdir(files_dir)
        for path in distributions:
            _copy(path, files_dir / path.name)
    else:
        files_dir.chmod(_DIR_MODE)
        for path in distributions:
            path.chmod(_FILE_MODE)
    if simple_dir.exists():
        shutil.rmtree(simple_dir)
    _mkdir(simple_dir)

    projects: dict[str, list[IndexedFile]] = defaultdict(list)
    for path in distributions:
        project = project_of(path.name)
        requires_python = None
        metadata_sha256 = None
        if path.name.endswith(".whl"):
            metadata = _wheel_metadata(files_dir / path.name)
            if metadata is not None:
                parsed = email.parser.BytesHeaderParser().parsebytes(metadata)
                requires_python = parsed.get("Requires-Python")
                if core_metadata:
                    metadata_path = files_dir / f"{path.name}.metadata"
                    metadata_path.write_bytes(metadata)
                    metadata_path.chmod(_FILE_MODE)
                    metadata_sha256 = sha256_file(metadata_path)
        projects[project].append(
            IndexedFile(
                project=project,
                filename=path.name,
                sha256=sha256_file(files_dir / path.name),
                requires_python=requires_python,
                metadata_sha256=metadata_sha256,
                size=(files_dir / path.name).stat().st_size,
                upload_time=upload_times.get(path.name, DEFAULT_UPLOAD_TIME),
                yanked=yanked.get(path.name, False),
                version=version_of(path.name),
            )
        )

    root_links = [
        f'<a href="{html.escape(urllib.parse.quote(name))}/">{html.escape(name)}</a>'
        for name in sorted(projects)
    ]
    _write_text(simple_dir / "index.html", _page("Simple index", root_links))
    _write_json(
        simple_dir / "index.json",
        {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in sorted(projects)]},
    )
    for name, entries in sorted(projects.items()):
        project_dir = simple_dir / name
        _mkdir(project_dir)
        links = [_file_link(entry) for entry in entries]
        _write_text(project_dir / "index.html", _page(f"Links for {name}", links))
        _write_json(project_dir / "index.json", _project_json(name, entries))
