"""Durations and sizes as people type them (``7d``, ``500M``) and as lines print them.

Kept apart and pure: the command line validates with them before any Docker call, and the
cache report prints bytes with them after every build.
"""

from __future__ import annotations

import re

from orchestrator.errors import BadInput

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
SIZE_PATTERN = r"(\d+(?:\.\d+)?)([kKmMgGtT]?)([iI]?[bB]?)"  # a profile's schema has it too
_SIZE = re.compile(SIZE_PATTERN)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration(text: str, option: str = "--older-than") -> float:
    """Seconds in ``30s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare number is seconds)."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise BadInput(f"{option}: '{text}' is not a duration (examples: 30m, 12h, 7d, 0s)")
    return float(found.group(1)) * _SECONDS[found.group(2)]


def parse_size(text: str, option: str = "--max-size") -> int:
    """Bytes in ``500M``, ``2G``, ``2GiB``, ``10k`` (binary units, as docker's); bare: bytes."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise BadInput(f"{option}: '{text}' is not a size (examples: 0, 500M, 2G)")
    return int(float(found.group(1)) * 1024 ** _POWERS[found.group(2).lower()])


def human_bytes(count: int) -> str:
    """``0 B``, ``812 B``, ``1.2 MB``: decimal units, as pip and BuildKit print them."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns at GB


def parse_human(text: str) -> int | None:
    """Bytes in a size Docker printed (``12.3MB``, ``4.096kB``, ``0B``); None if not one."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kMGT]?)i?B", text.strip())
    if found is None:
        return None
    scale: float = 1000.0 ** _POWERS[found.group(2).lower()]
    return round(float(found.group(1)) * scale)
