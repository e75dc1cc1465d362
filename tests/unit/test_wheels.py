"""Generated wheels and the static PEP 503 tree: correct, deterministic, installable offline."""

from __future__ import annotations

import csv
import email.parser
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import zipfile
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from packaging.version import Version

from devsupport.index import project_of, upload_time_text, version_of, write_simple_index
from devsupport.wheels import (
    PAYLOAD_FILENAME,
    dist_name,
    make_wheel,
    normalize_name,
    record_hash,
    sha256_file,
    wheel_filename,
)


def _pip_env() -> dict[str, str]:
    """pip with no configuration and no network index: nothing from the host leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PIP_NO_INDEX="1",
    )
    return env


def _read_record(archive: zipfile.ZipFile) -> tuple[str, list[list[str]]]:
    (record_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    rows = list(csv.reader(io.StringIO(archive.read(record_name).decode())))
    return record_name, rows


@pytest.mark.parametrize(
    ("name", "normalized", "dist"),
    [
        ("top-pkg", "top-pkg", "top_pkg"),
        ("Foo.Bar_baz", "foo-bar-baz", "foo_bar_baz"),
        ("A__B--C..d", "a-b-c-d", "a_b_c_d"),
    ],
)
def test_name_normalisation(name: str, normalized: str, dist: str) -> None:
    assert normalize_name(name) == normalized
    assert dist_name(name) == dist
    assert wheel_filename(name, "1.0.0-RC1") == f"{dist}-1.0.0rc1-py3-none-any.whl"
    assert project_of(wheel_filename(name, "2")) == normalized


def test_record_lists_every_member_with_correct_hash_and_size(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path, "Foo.Bar", "1.2", requires=["base-pkg>=1.0", "other; python_version>'3'"]
    )
    assert wheel.name == "foo_bar-1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.testzip() is None
        record_name, rows = _read_record(archive)
        assert record_name == "foo_bar-1.2.dist-info/RECORD"
        listed = {row[0] for row in rows}
        assert listed == set(archive.namelist())
        for path, digest, size in rows:
            if path == record_name:
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            assert digest == record_hash(data)
            assert digest.startswith("sha256=")
            assert "=" not in digest[len("sha256=") :]  # unpadded urlsafe base64
            assert int(size) == len(data)

        metadata = email.parser.BytesHeaderParser().parsebytes(
            archive.read("foo_bar-1.2.dist-info/METADATA")
        )
        assert metadata["Metadata-Version"] == "2.1"
        assert metadata["Name"] == "Foo.Bar"
        assert metadata["Version"] == "1.2"
        assert metadata.get_all("Requires-Dist") == [
            "base-pkg>=1.0",
            "other; python_version>'3'",
        ]
        wheel_meta = email.parser.BytesHeaderParser().parsebytes(
            archive.read("foo_bar-1.2.dist-info/WHEEL")
        )
        assert wheel_meta["Wheel-Version"] == "1.0"
        assert wheel_meta["Root-Is-Purelib"] == "true"
        assert wheel_meta["Tag"] == "py3-none-any"
        init = archive.read("foo_bar/__init__.py").decode()
        assert '__version__ = "1.2"' in init


def test_payload_is_incompressible_and_deterministic(tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    first = make_wheel(tmp_path / "a", "big-pkg", "1.0", payload_bytes=size)
    second = make_wheel(tmp_path / "b", "big-pkg", "1.0", payload_bytes=size)
    other_seed = make_wheel(tmp_path / "c", "big-pkg", "1.0", payload_bytes=size, seed=7)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other_seed.read_bytes()
    assert size < first.stat().st_size < size + 4096
    with zipfile.ZipFile(first) as archive:
        payload = archive.read(f"big_pkg/{PAYLOAD_FILENAME}")
    assert len(payload) == size
    # random bytes: zlib cannot shrink them
    assert len(zlib.compress(payload[:65536])) > 65000


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid project name"):
        make_wheel(tmp_path, "-bad", "1.0")
    with pytest.raises(ValueError, match="identifier"):
        make_wheel(tmp_path, "1pkg", "1.0")


def test_simple_index_tree(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "Base.Pkg", "1.0")
    make_wheel(wheels, "top-pkg", "1.0", requires=["base-pkg"])
    make_wheel(wheels, "top-pkg", "2.0", requires=["base-pkg>=1.0"])
    root = tmp_path / "tree"
    write_simple_index(wheels, root)

    root_page = (root / "simple" / "index.html").read_text()
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', root_page) == [
        ("base-pkg/", "base-pkg"),
        ("top-pkg/", "top-pkg"),
    ]
    page = (root / "simple" / "top-pkg" / "index.html").read_text()
    links = re.findall(
        r'<a href="\.\./\.\./files/([^"#]+)#sha256=([0-9a-f]{64})">([^<]+)</a>', page
    )
    assert [name for name, _, _ in links] == [
        "top_pkg-1.0-py3-none-any.whl",
        "top_pkg-2.0-py3-none-any.whl",
    ]
    for filename, digest, text in links:
        # proxpi keys files by the anchor text: it must be the exact file name
        assert text == filename
        served = root / "files" / filename
        assert digest == sha256_file(served) == hashlib.sha256(served.read_bytes()).hexdigest()
        assert served.read_bytes() == (wheels / filename).read_bytes()
    assert "data-core-metadata" not in page

    # the non-root server in the container must be able to read everything
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH, path
        if path.is_dir():
            assert mode & stat.S_IXOTH, path

    # rewriting picks up new wheels and drops nothing
    make_wheel(wheels, "new.pkg", "0.1")
    write_simple_index(wheels, root, core_metadata=True)
    assert (root / "simple" / "new-pkg" / "index.html").is_file()
    page = (root / "simple" / "new-pkg" / "index.html").read_text()
    metadata_file = root / "files" / "new_pkg-0.1-py3-none-any.whl.metadata"
    assert f'data-core-metadata="sha256={sha256_file(metadata_file)}"' in page
    assert b"Name: new.pkg" in metadata_file.read_bytes()


def test_json_pages_beside_the_html(tmp_path: Path) -> None:
    """PEP 691 JSON with PEP 700's fields, from the dates and yanks the writer is given;
    the HTML keeps what it said and gains only ``data-yanked``."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "dated-pkg", "1.0", requires_python=">=3.8")
    make_wheel(wheels, "dated-pkg", "1.10")
    make_wheel(wheels, "dated-pkg", "1.9", payload_bytes=1000)
    old = "dated_pkg-1.0-py3-none-any.whl"
    later = datetime(2023, 9, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    root = tmp_path / "tree"
    write_simple_index(
        wheels,
        root,
        core_metadata=True,
        upload_times={
            old: datetime(2023, 5, 1, tzinfo=UTC),
            "dated_pkg-1.9-py3-none-any.whl": later,
        },
        yanked={"dated_pkg-1.10-py3-none-any.whl": "broken"},
    )
    index = json.loads((root / "simple" / "index.json").read_text())
    assert index == {"meta": {"api-version": "1.1"}, "projects": [{"name": "dated-pkg"}]}
    page = json.loads((root / "simple" / "dated-pkg" / "index.json").read_text())
    assert page["meta"] == {"api-version": "1.1"}
    assert page["name"] == "dated-pkg"
    assert page["versions"] == ["1.0", "1.9", "1.10"], "in version order, not text order"
    files = {f["filename"]: f for f in page["files"]}
    first = files[old]
    metadata = root / "files" / f"{old}.metadata"
    assert first == {
        "filename": old,
        "url": f"../../files/{old}",
        "hashes": {"sha256": sha256_file(root / "files" / old)},
        "requires-python": ">=3.8",
        "core-metadata": {"sha256": sha256_file(metadata)},
        "data-dist-info-metadata": {"sha256": sha256_file(metadata)},
        "size": (root / "files" / old).stat().st_size,
        "upload-time": "2023-05-01T00:00:00.000000Z",
        "yanked": False,
    }
    assert files["dated_pkg-1.9-py3-none-any.whl"]["upload-time"] == "2023-09-01T10:30:00.000000Z"
    assert files["dated_pkg-1.10-py3-none-any.whl"]["upload-time"] == (
        "2024-01-02T03:04:05.000000Z"
    ), "the default date"
    assert files["dated_pkg-1.10-py3-none-any.whl"]["yanked"] == "broken"
    assert "requires-python" not in files["dated_pkg-1.9-py3-none-any.whl"]

    html = (root / "simple" / "dated-pkg" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8"' in html
    assert html.count("data-yanked") == 1
    assert re.search(r'<a [^>]*data-yanked="broken">dated_pkg-1\.10-', html)

    with pytest.raises(ValueError, match="no such distribution"):
        write_simple_index(wheels, root, upload_times={"dated_pkg-9.9-py3-none-any.whl": later})
    with pytest.raises(ValueError, match="time zone"):
        upload_time_text(datetime(2023, 5, 1))  # no time zone: refused
    assert version_of("dated_pkg-1.0-py3-none-any.whl") == "1.0"
    assert version_of("Dated.Pkg-2.0rc1.tar.gz") == "2.0rc1"


def _pip_supports_python_option() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout
    return Version(out.split()[1]) >= Version("22.3")


def test_generated_wheels_install_offline_with_pip(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "Base.Pkg", "1.0", payload_bytes=10_000)
    make_wheel(wheels, "mid_pkg", "1.5", requires=["base-pkg>=1.0"])
    make_wheel(wheels, "top-pkg", "1.0")
    make_wheel(wheels, "top-pkg", "2.0", requires=["mid-pkg==1.5"])

    venv = tmp_path / "venv"
    env = _pip_env()
    if _pip_supports_python_option():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    else:  # older pip: give the venv its own (slower to create)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
    result = subprocess.run(
        [*pip, "install", "--no-index", "--find-links", str(wheels), "top-pkg"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed" in result.stdout

    probe = (
        "import base_pkg, mid_pkg, top_pkg, pathlib\n"
        "print(top_pkg.__version__, mid_pkg.__version__, base_pkg.__version__)\n"
        "print(pathlib.Path(base_pkg.__file__).with_name('_payload.bin').stat().st_size)\n"
    )
    out = subprocess.run(
        [venv / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["2.0", "1.5", "1.0", "10000"]
