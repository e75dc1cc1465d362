"""Installed for every user (issue 15, item 9): what the README promises another user.

Two facts, each run as a real unprivileged user of this machine (``nobody``; no user is
made or removed here) by ``setpriv``, inside a network namespace of its own (``unshare
--net``), so that nothing can reach PyPI: every wheel comes from the directory
scripts/setup filled once (``tests/install/requirements.txt`` says what it holds).

- README, "Install it for yourself": a user copies the checkout into a directory they own
  and runs the README's own command lines there, ``pipx install ~/orchestrator`` or ``uv
  tool install ~/orchestrator``, then ``orchestrate --profiles-dir ~/orchestrator/profiles
  profiles list``. The copy is theirs because setuptools writes its egg-info into the
  source directory.
- scripts/setup's venv, run as root with ``SUDO_USER``: made from /usr/bin/python3 (even
  when the first python3 on PATH is one only root can reach, as pyenv's under /root is)
  and owned by that user, who can run its ``orchestrate``.

Root is needed to act as another user, as in CI (which runs as root).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
WHEELS_ENV = "ORCHESTRATE_INSTALL_WHEELS"
DEFAULT_WHEELS = Path("/var/lib/orchestrator-setup/install-wheels")
STAMP = ".requirements.sha256"
USER = pwd.getpwnam("nobody")
SYSTEM_PYTHON = "/usr/bin/python3"
# The README's command lines, run as they are written (bash expands the ~).
INSTALL = {"pipx": "pipx install ~/orchestrator", "uv": "uv tool install ~/orchestrator"}
LIST = "orchestrate --profiles-dir ~/orchestrator/profiles profiles list"
# What a clone has and a working checkout may add: none of it is needed to install, and a
# venv or a root-owned egg-info would make the copy less like a user's own.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".cache"
)
TIMEOUT = 300


def wheel_dir() -> Path:
    """The wheels scripts/setup downloaded for today's pyproject.toml and tools' pins."""
    directory = Path(os.environ.get(WHEELS_ENV) or DEFAULT_WHEELS)
    wanted = hashlib.sha256(
        (REPO / "pyproject.toml").read_bytes() + REQUIREMENTS.read_bytes()
    ).hexdigest()
    try:
        found = (directory / STAMP).read_text().strip()
    except OSError:
        found = ""
    assert found == wanted, (
        f"{directory} does not hold the wheels for this pyproject.toml and"
        f" {REQUIREMENTS.relative_to(REPO)} (run scripts/setup, which downloads them once)"
    )
    return directory


def pinned(name: str) -> str:
    """The version requirements.txt pins for a tool."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} is not pinned in {REQUIREMENTS}")


def readme_section() -> str:
    readme = (REPO / "README.md").read_text()
    assert "## Install it for yourself" in readme, "the README tells no user how to install"
    start = readme.index("## Install it for yourself")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def offline_env(home: Path, wheels: Path) -> dict[str, str]:
    """A user's environment in which pip, pipx and uv install only from `wheels`.

    Nothing of this machine's pip configuration (its find-links and extra indexes) or of
    the test run's environment comes along, and everything they write stays in `home`."""
    return {
        "HOME": str(home),
        # The tools' venv last, so that python3 is still the system's.
        "PATH": f"{home}/.local/bin:/usr/local/bin:/usr/bin:/bin:{home}/tools/bin",
        "LANG": "C.UTF-8",
        # Temporary files too stay in the scratch directory (uv leaves locks in its TMPDIR).
        "TMPDIR": str(home),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # pipx would take uv as its backend if it found one; uv has its own test.
        "PIPX_DEFAULT_BACKEND": "pip",
        "UV_NO_CONFIG": "1",
        "UV_OFFLINE": "1",
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "UV_PYTHON_DOWNLOADS": "never",
    }


def run(argv: list[str], env: dict[str, str], *, as_user: bool) -> str:
    """Run without a network, as `nobody` or as root; its output, or a failed test."""
    who = [f"--reuid={USER.pw_uid}", f"--regid={USER.pw_gid}", "--clear-groups"]
    prefix = ["unshare", "--net", *(["setpriv", *who] if as_user else [])]
    done = subprocess.run(
        [*prefix, *argv],
        env=env,
        cwd=env["HOME"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture
def as_root() -> None:
    assert os.geteuid() == 0, "these tests act as another user: run them as root"


@pytest.fixture
def scratch(as_root: None) -> Iterator[Path]:
    """A directory `nobody` can enter (pytest's tmp_path is root's alone), removed after."""
    directory = Path(tempfile.mkdtemp(prefix="orchestrator-test-install-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def home(scratch: Path) -> Path:
    """`nobody`'s home for one test: theirs alone, as a home is."""
    directory = scratch / "home"
    directory.mkdir(mode=0o700)
    os.chown(directory, USER.pw_uid, USER.pw_gid)
    return directory


def copy_checkout(destination: Path) -> None:
    """The checkout as a clone has it, readable by everyone (`chmod -R a+rX`) whatever
    umask the checkout was made with: `nobody` runs what is installed from it."""
    shutil.copytree(REPO, destination, symlinks=True, ignore=NOT_COPIED)
    for path in [destination, *destination.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(mode | (0o555 if path.is_dir() or mode & 0o111 else 0o444))


def chown_tree(top: Path, uid: int, gid: int) -> None:
    os.chown(top, uid, gid)
    for parent, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(Path(parent) / name, uid, gid, follow_symlinks=False)


@pytest.mark.parametrize("tool", sorted(INSTALL))
def test_a_user_installs_their_own_copy_with_the_readme_commands(tool: str, home: Path) -> None:
    section = readme_section()
    assert INSTALL[tool] in section
    assert LIST in section
    wheels = wheel_dir()
    env = offline_env(home, wheels)
    # Copied by root and handed over, as `cp -r` by the user would leave it: the checkout
    # may sit where `nobody` cannot read (CI's clone might).
    copy_checkout(home / "orchestrator")
    chown_tree(home / "orchestrator", USER.pw_uid, USER.pw_gid)
    # The tool itself, as a user without it would get it: pip into a venv of their own.
    run([SYSTEM_PYTHON, "-m", "venv", str(home / "tools")], env, as_user=True)
    run([str(home / "tools/bin/pip"), "install", "-q", tool], env, as_user=True)
    assert pinned(tool) in run([tool, "--version"], env, as_user=True)

    run(["bash", "-c", INSTALL[tool]], env, as_user=True)
    listed = run(["bash", "-c", LIST], env, as_user=True)

    assert (home / ".local/bin/orchestrate").exists()
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert names == sorted(path.stem for path in (REPO / "profiles").glob("*.yaml"))


def test_setup_makes_the_venv_for_the_sudo_user_from_the_system_python(scratch: Path) -> None:
    wheels = wheel_dir()
    # scripts/setup from a copy `nobody` can read, since the venv's editable install points
    # into it; run with only step 3 (ORCHESTRATE_VENV_ONLY), which needs no engine.
    repo = scratch / "orchestrator"
    copy_checkout(repo)
    venv = scratch / "venv"
    # A python3 first on PATH that only root can reach, as pyenv's under /root is.
    hidden = scratch / "root-only"
    hidden.mkdir(mode=0o700)
    (hidden / "python3").symlink_to(SYSTEM_PYTHON)
    root_home = scratch / "root-home"
    root_home.mkdir(mode=0o700)
    env = {
        **offline_env(root_home, wheels),
        "PATH": f"{hidden}:{os.environ['PATH']}",
        "SUDO_USER": USER.pw_name,
        "ORCHESTRATE_VENV": str(venv),
        "ORCHESTRATE_VENV_ONLY": "1",
        "ORCHESTRATE_SETUP_LOG": str(root_home / "setup.log"),
    }

    run(["bash", str(repo / "scripts/setup")], env, as_user=False)

    config = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines())
    assert config["home"] == str(Path(SYSTEM_PYTHON).parent)
    not_theirs = [
        str(path)
        for path in [venv, *venv.rglob("*")]
        if (path.lstat().st_uid, path.lstat().st_gid) != (USER.pw_uid, USER.pw_gid)
    ]
    assert not_theirs == [], f"{len(not_theirs)} not {USER.pw_name}'s, first {not_theirs[:3]}"
    user_env = {"HOME": str(scratch), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    version = run([str(venv / "bin/orchestrate"), "--version"], user_env, as_user=True)
    assert version.startswith("orchestrate ")
