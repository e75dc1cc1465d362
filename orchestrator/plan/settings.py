"""What installers are told, as environment variables and as config files.

Shell-form RUN steps load the variables from a secret; exec-form steps and heredoc
scripts with their own interpreter have no shell to load them into, so they read the same
settings from config files mounted as secrets where pip and uv look for system-wide
configuration. Variables beat config files in both pip and uv, so a Dockerfile's own
``ENV PIP_INDEX_URL`` still wins for those steps; the plan says so where it happens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

# pip reads /etc/xdg/pip/pip.conf first and lets later files override it; uv reads the
# first uv/uv.toml of $XDG_CONFIG_DIRS (/etc/xdg) before /etc/uv/uv.toml. Both paths are
# rare in images, so mounting over them for one step hides nothing a build relies on.
PIP_CONF_TARGET = "/etc/xdg/pip/pip.conf"
UV_TOML_TARGET = "/etc/xdg/uv/uv.toml"
# Seconds installers wait for a byte: a proxy sends a cold file only once it has all of
# it, so pip's 15 s and uv's 30 s would give up on a large wheel over a slow link.
INSTALLER_TIMEOUT = 900


def installer_settings(
    url: str, *, proxy: bool, timeout: float = INSTALLER_TIMEOUT
) -> dict[str, str]:
    """Variables that point pip, uv, pip-tools and poetry at one index and nothing else."""
    parts = urlsplit(url)
    env = {
        "PIP_INDEX_URL": url,
        "UV_DEFAULT_INDEX": url,
        # poetry follows a PyPI mirror only through poetry-plugin-pypi-mirror; without the
        # plugin in poetry's environment it goes to PyPI, as it would with plain docker.
        "POETRY_PYPI_MIRROR_URL": url,
        # pipenv puts a lock's own `-i https://pypi.org/simple` before PIP_INDEX_URL; its
        # mirror setting replaces PyPI's URL and leaves the lock file as it is.
        "PIPENV_PYPI_MIRROR": url,
        "PIP_DEFAULT_TIMEOUT": str(int(timeout)),
        "UV_HTTP_TIMEOUT": str(int(timeout)),
        **cache_settings(),
    }
    if parts.scheme == "http":
        env["PIP_TRUSTED_HOST"] = trusted_host(url)
    if proxy:
        # pip config files could add an extra-index-url, and pip gives indexes no priority.
        env["PIP_CONFIG_FILE"] = "/dev/null"
    return env


def cache_settings() -> dict[str, str]:
    """What every mode sets, the fallback to PyPI included: caches live on cache mounts,
    another file system, so uv copies from them rather than failing to hardlink (uv's
    Docker guide); a symlink into a cache mount would dangle in the image."""
    return {"UV_LINK_MODE": "copy"}


def trusted_host(url: str) -> str:
    """pip's trusted-host for a plain-http index: the host (any port), IPv6 in brackets."""
    name = urlsplit(url).hostname or ""
    return f"[{name}]" if ":" in name else name


def pip_conf(env: Mapping[str, str]) -> str:
    """The same settings as a pip.conf, for steps that cannot load variables."""
    keys = {
        "PIP_INDEX_URL": "index-url",
        "PIP_TRUSTED_HOST": "trusted-host",
        "PIP_CERT": "cert",
        "PIP_DEFAULT_TIMEOUT": "timeout",
    }
    lines = [f"{option} = {env[name]}" for name, option in keys.items() if name in env]
    return "[global]\n" + "\n".join(lines) + "\n" if lines else ""


def uv_toml(env: Mapping[str, str]) -> str:
    """The same settings as a uv.toml (keys every uv release since 0.2 accepts)."""
    lines = []
    if "UV_DEFAULT_INDEX" in env:
        lines.append(f"index-url = {json.dumps(env['UV_DEFAULT_INDEX'])}")
    if "UV_LINK_MODE" in env:
        lines.append(f"link-mode = {json.dumps(env['UV_LINK_MODE'])}")
    return "\n".join(lines) + "\n" if lines else ""
