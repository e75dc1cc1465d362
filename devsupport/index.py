"""Write a static PEP 503 "simple" index tree for a directory of distribution files.

Layout written under ``root``::

    simple/index.html                 one <a href="<name>/"> per project
    simple/<normalized-name>/index.html
                                      one <a href="../../files/<file>#sha256=<hex>">
    files/<file>                      the distributions themselves

The tree is made world-readable, because the upstream container serves it as a non-root user
from a read-only bind mount.
"""

from __future__ import annotations

import email.parser
import html
import os
import shutil
import urllib.parse
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from devsupport.wheels import normalize_name, sha256_file

__all__ = ["IndexedFile", "project_of", "write_simple_index"]

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


def _file_link(entry: IndexedFile) -> str:
    href = f"../../files/{urllib.parse.quote(entry.filename)}#sha256={entry.sha256}"
    attributes = [f'href="{html.escape(href)}"']
    if entry.requires_python:
        attributes.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
    if entry.metadata_sha256:
        value = f"sha256={entry.metadata_sha256}"
        attributes.append(f'data-core-metadata="{value}"')
        attributes.append(f'data-dist-info-metadata="{value}"')
    return f"<a {' '.join(attributes)}>{html.escape(entry.filename)}</a>"


def write_simple_index(
    wheels_dir: Path | str, root: Path | str, *, core_metadata: bool = False
) -> None:
    """Write the PEP 503 tree for every ``*.whl`` / sdist in ``wheels_dir`` under ``root``.

    Files are hard-linked (or copied) into ``root/files/``; ``root/simple/`` is rewritten from
    scratch, so calling this again after adding wheels gives an up-to-date index.  With
    ``core_metadata`` each wheel's METADATA is also published as ``<file>.metadata`` and
    advertised with ``data-core-metadata`` (PEP 658/714), as PyPI does.
    """
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
            )
        )

    root_links = [
        f'<a href="{html.escape(urllib.parse.quote(name))}/">{html.escape(name)}</a>'
        for name in sorted(projects)
    ]
    _write_text(simple_dir / "index.html", _page("Simple index", root_links))
    for name, entries in sorted(projects.items()):
        project_dir = simple_dir / name
        _mkdir(project_dir)
        links = [_file_link(entry) for entry in entries]
        _write_text(project_dir / "index.html", _page(f"Links for {name}", links))
