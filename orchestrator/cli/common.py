"""What every command handler shares: the profile store and printing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.profiles import ProfileStore, ProxySettings


def store(options: argparse.Namespace) -> ProfileStore:
    from orchestrator.profiles import ProfileStore  # noqa: PLC0415 - pydantic, when needed

    chosen = Path(options.profiles_dir) if options.profiles_dir else None
    return ProfileStore.from_option(chosen)


def proxy_settings(options: argparse.Namespace) -> ProxySettings:
    """The proxy settings of ``--profile``, or the built-in ones."""
    from orchestrator.profiles import ProxySettings  # noqa: PLC0415

    if options.profile:
        return store(options).resolve(options.profile).profile.proxy
    return ProxySettings()


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))
