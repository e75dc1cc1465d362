"""Generate valid pure-Python wheels offline, for tests and benchmarks.

A generated wheel holds an importable package ``{pkg}/__init__.py`` (defining ``__version__``),
an optional incompressible data file of a chosen size (so a wheel can be made as large as a real
one), and a ``.dist-info`` directory with ``METADATA``, ``WHEEL`` and a ``RECORD`` carrying the
sha256 hash and size of every member.  The same arguments always produce the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.version import Version

__all__ = [
    "PAYLOAD_FILENAME",
    "dist_name",
    "import_name",
    "make_wheel",
    "normalize_name",
    "normalize_version",
    "record_hash",
    "sha256_file",
    "wheel_filename",
]

PAYLOAD_FILENAME = "_payload.bin"
"""Name of the random data file put next to ``__init__.py`` when ``payload_bytes > 0``."""

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return _SEPARATORS.sub("-", name).lower()


def dist_name(name: str) -> str:
    """Distribution name as written in wheel file names (PEP 427): ``foo_bar_baz``."""
    return _SEPARATORS.sub("_", name).lower()


def import_name(name: str) -> str:
    """Name of the top-level package the wheel installs: the dist name, a valid identifier."""
    pkg = dist_name(name)
    if not pkg.isidentifier():
        raise ValueError(f"project name {name!r} does not give a Python identifier ({pkg!r})")
    return pkg


def normalize_version(version: str) -> str:
    """PEP 440 normalised version (``1.0.0-RC1`` -> ``1.0.0rc1``)."""
    return str(Version(version))


def wheel_filename(name: str, version: str) -> str:
    """File name of the pure-Python wheel for ``name`` ``version``."""
    ver = normalize_version(version).replace("-", "_")
    return f"{dist_name(name)}-{ver}-py3-none-any.whl"


def record_hash(data: bytes) -> str:
    """Hash as written in RECORD: ``sha256=`` + urlsafe base64 without padding."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (the form used in index URL fragments)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _metadata(
    name: str, version: str, requires: Iterable[str], summary: str, requires_python: str | None
) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _wheel_file() -> bytes:
    return (
        "Wheel-Version: 1.0\n"
        "Generator: orchestrator-tests (1.0)\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ).encode("ascii")


def _payload(name: str, version: str, size: int, seed: int | str | None) -> bytes:
    key = f"{normalize_name(name)}=={version}" if seed is None else f"seed:{seed}"
    rng = random.Random(hashlib.sha256(key.encode("utf-8")).digest())  # noqa: S311 - reproducible
    return rng.randbytes(size)


def make_wheel(
    dest_dir: Path | str,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    payload_bytes: int = 0,
    seed: int | str | None = None,
    summary: str | None = None,
    requires_python: str | None = None,
) -> Path:
    """Write ``{dist}-{version}-py3-none-any.whl`` into ``dest_dir`` and return its path.

    ``requires`` become ``Requires-Dist`` lines (PEP 508 strings, e.g. ``"base-pkg>=1.0"``);
    ``requires_python`` a ``Requires-Python`` line, which an index publishes beside the file.
    ``payload_bytes`` adds ``{pkg}/_payload.bin`` of that many random (incompressible) bytes,
    stored uncompressed, so the wheel is slightly larger than the payload.  The output is
    byte-for-byte deterministic: the payload comes from ``seed`` (default: name and version),
    and zip timestamps, permissions and member order are fixed.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid project name {name!r}")
    if payload_bytes < 0:
        raise ValueError("payload_bytes must be >= 0")
    version = normalize_version(version)
    requires = tuple(requires)
    pkg = import_name(name)
    dist_info = f"{dist_name(name)}-{version.replace('-', '_')}.dist-info"

    members: list[tuple[str, bytes, int]] = [
        (
            f"{pkg}/__init__.py",
            f'"""Generated test package {name}."""\n\n__version__ = "{version}"\n'.encode(),
            zipfile.ZIP_DEFLATED,
        ),
    ]
    if payload_bytes:
        members.append(
            (
                f"{pkg}/{PAYLOAD_FILENAME}",
                _payload(name, version, payload_bytes, seed),
                zipfile.ZIP_STORED,
            )
        )
    members.append(
        (
            f"{dist_info}/METADATA",
            _metadata(
                name,
                version,
                requires,
                summary or f"Generated test package {name}",
                requires_python,
            ),
            zipfile.ZIP_DEFLATED,
        )
    )
    members.append((f"{dist_info}/WHEEL", _wheel_file(), zipfile.ZIP_DEFLATED))

    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data, _ in members:
        writer.writerow([path, record_hash(data), str(len(data))])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    members.append((f"{dist_info}/RECORD", record.getvalue().encode("utf-8"), zipfile.ZIP_DEFLATED))

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / wheel_filename(name, version)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for path, data, compression in members:
            info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            info.compress_type = compression
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            info.create_system = 3  # unix, so the permission bits are honoured
            archive.writestr(info, data)
    partial.replace(target)
    target.chmod(0o644)
    return target
