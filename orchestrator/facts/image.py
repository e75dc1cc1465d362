"""What the engine says about an image: a run's (its PYTHONPATH and USER, for the
fallback's volume) and a build's base images (their ENV, USER and WORKDIR, which decide
where a RUN step's installers keep their caches).

Asked with `docker image inspect` through the engine's ``capture``, not python-on-whales:
a remembered build asks again on every build whether a base image changed, and
python-on-whales' import (0.2-0.3 s with the call, measured here) costs more than that
fast path's whole overhead budget, where the docker command takes 0.01-0.02 s (Docker
20.10). Any failure reads as "not shown": an image the engine does not hold and an engine
that refuses leave the same thing unknown, which the plan says; the command that needs the
engine next fails on its own terms.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from orchestrator.engine.api import current
from orchestrator.errors import HandledError
from orchestrator.facts.model import ImageFacts


def image_facts(image: str) -> ImageFacts:
    """The image's configuration as the engine holds it, or that it did not show one."""
    argv = ["docker", "image", "inspect", image]
    try:
        return _from_inspect(json.loads(current().capture(f"inspect image {image}", argv))[0])
    except (HandledError, ValueError, LookupError, TypeError, AttributeError):
        return ImageFacts(present=False)


def base_images(images: Iterable[str | None]) -> dict[str, ImageFacts]:
    """Each base image's facts, each asked once (a FROM that could not be resolved, None,
    is not asked). One command an image, `docker image inspect` of several exiting
    non-zero when any one is missing with nothing that says which; so several run at
    once, and a Dockerfile of many base images costs a remembered build about one."""
    wanted = list(dict.fromkeys(image for image in images if image))
    if len(wanted) < 2:
        return {image: image_facts(image) for image in wanted}
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - 1 ms, when needed

    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        return dict(zip(wanted, pool.map(image_facts, wanted), strict=True))


def _from_inspect(found: Any) -> ImageFacts:
    config = found.get("Config") or {}
    env = dict(str(item).partition("=")[::2] for item in config.get("Env") or [])
    return ImageFacts(
        present=True,
        env=env,
        user=str(config.get("User") or ""),
        workdir=str(config.get("WorkingDir") or ""),
        id=str(found.get("Id") or ""),
    )
