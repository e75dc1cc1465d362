"""`orchestrate proxy up|status|down|logs|image|stats|prune`."""

from __future__ import annotations

import argparse

from orchestrator.cli.common import print_json, proxy_settings
from orchestrator.errors import ExitCode
from orchestrator.proxy import image as images
from orchestrator.proxy import lifecycle, removal, state


def _print_status(found: lifecycle.ProxyStatus, as_json: bool) -> None:
    if as_json:
        print_json(found.as_dict())
        return
    for key, value in found.as_dict().items():
        print(f"{key + ':':<14}{'' if value is None else value}")


def up(options: argparse.Namespace) -> None:
    """Find, start or create the proxy and wait until it serves."""
    found = lifecycle.up(proxy_settings(options), options.profile or "")
    _print_status(found, options.json)


def status(options: argparse.Namespace) -> int:
    """Report the proxy's state and whether it serves; exit 5 when it does not."""
    found = lifecycle.report(proxy_settings(options))
    _print_status(found, options.json)
    return 0 if found.healthy else int(ExitCode.PROXY_UNAVAILABLE)


def down(options: argparse.Namespace) -> None:
    """Stop and remove the proxy container (the cache volume stays unless --purge)."""
    settings = proxy_settings(options)
    for line in removal.down(settings, purge=options.purge) or ["nothing to remove"]:
        print(line)


def logs(options: argparse.Namespace) -> None:
    """Print the proxy container's logs."""
    print(state.logs(proxy_settings(options), tail=options.tail), end="")


def image(options: argparse.Namespace) -> None:
    """Make the proxy image available: present, pulled, or built locally."""
    for name in images.provide(proxy_settings(options), options.base_image):
        print(name)


def stats(options: argparse.Namespace) -> None:
    """The cache as a whole: size on disk, files, hits and misses, largest projects."""
    from orchestrator.proxy import stats as cache_stats  # noqa: PLC0415

    found = cache_stats.gather(proxy_settings(options))
    print_json(found) if options.json else print(cache_stats.text(found))


def prune(options: argparse.Namespace) -> None:
    """Remove package files from the front's cache by age and to a size."""
    from orchestrator.errors import BadInput  # noqa: PLC0415
    from orchestrator.proxy import prune as pruning  # noqa: PLC0415
    from orchestrator.units import parse_duration, parse_size  # noqa: PLC0415

    if options.older_than is None and options.max_size is None:
        raise BadInput("proxy prune: give --older-than DURATION, --max-size SIZE, or both")
    older = None if options.older_than is None else parse_duration(options.older_than)
    size = None if options.max_size is None else parse_size(options.max_size)
    settings = proxy_settings(options)
    done = pruning.prune(settings, older_than=older, max_size=size, dry_run=options.dry_run)
    print_json(done.as_dict()) if options.json else print(done.line())
