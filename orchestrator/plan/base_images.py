"""Where each stage starts: its base image's ENV, USER and WORKDIR, as the engine showed
them, before the Dockerfile's own lines.

A RUN step runs in that environment, so it decides where an installer keeps its cache: a
poetry image that sets ``POETRY_CACHE_DIR=/opt/poetry/cache`` has poetry's downloads
there, and a cache mount at ``/root/.cache/pypoetry`` caches nothing (issue 21). A stage
FROM another stage inherits that stage's state, as the parser already reads it; an image
the engine did not show leaves the stage as the Dockerfile alone says, and the plan says so.
"""

from __future__ import annotations

from orchestrator.dockerfile import Seed, Stage
from orchestrator.facts.model import ImageFacts
from orchestrator.plan.draft import Draft
from orchestrator.plan.installer_caches import CACHES

# What in an image's configuration moves an installer's cache.
_CACHE_VARIABLES = (*(cache.variable for cache in CACHES), "XDG_CACHE_HOME", "HOME")


def seed_stages(draft: Draft) -> None:
    """Read the Dockerfile again with each stage starting from its base image's state."""
    seeds: dict[int, Seed] = {}
    refs = draft.parsed.image_refs(draft.profile.build_args)
    for index, ref in refs.items():
        stage = draft.parsed.stages[index]
        if ref is None:
            _unresolved(draft, stage)
            continue
        image = draft.facts.base_images.get(ref)
        if image is None:
            continue  # not asked: the plan keeps to the Dockerfile, as it always did
        if image.present:
            seeds[index] = Seed(image.env, image.user, image.workdir)
            _seeded(draft, stage, ref, image)
        else:
            _unknown(draft, stage, ref)
    draft.parsed = draft.parsed.seeded(seeds)


def _seeded(draft: Draft, stage: Stage, ref: str, image: ImageFacts) -> None:
    said = [f"USER {image.user}"] if image.user else []
    said += [f"WORKDIR {image.workdir}"] if image.workdir not in ("", "/") else []
    said += [f"{name}={image.env[name]}" for name in _CACHE_VARIABLES if name in image.env]
    draft.decide(
        f"FROM line {stage.end_line}",
        f"{ref}: {', '.join(said) or 'no USER, WORKDIR or cache variable of its own'}",
        f"its ENV, USER and WORKDIR as the engine holds the image, {image.id[:19] or 'no id'}: "
        "each RUN step of the stage starts from them, the Dockerfile's own lines after, "
        "and they decide where installers keep their caches",
    )


def _unknown(draft: Draft, stage: Stage, ref: str) -> None:
    draft.decide(
        f"FROM line {stage.end_line}",
        f"{ref}: ENV, USER and WORKDIR unknown",
        "the engine shows no image by that name to read them from, which a build's own "
        "pull need not leave: caches go where the Dockerfile alone puts them; pull the "
        "image to let its own ENV, USER and WORKDIR decide",
    )


def _unresolved(draft: Draft, stage: Stage) -> None:
    draft.decide(
        f"FROM line {stage.end_line}",
        f"{stage.base}: ENV, USER and WORKDIR unknown",
        "a variable in it has no value here (no ARG default before the first FROM, and no "
        "build arg in the profile), so no image was asked about: caches go where the "
        "Dockerfile alone puts them",
    )
