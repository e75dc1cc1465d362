"""The proxy's images: the configured ones if present or pullable, else our own, built locally.

Looking for an image that no registry serves costs a failed pull each time; the answer is
remembered per image and engine (``facts_dir``), so a machine without a registry pays it
once, not at every proxy start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from orchestrator import paths
from orchestrator.engine import client as engine
from orchestrator.engine.api import current as current_engine
from orchestrator.errors import HandledError, ProxyUnavailable
from orchestrator.facts.host import engine_endpoint
from orchestrator.log import get_logger
from orchestrator.profiles import ProxySettings
from orchestrator.proxy.spec import (
    LOCAL_FRONT_IMAGE,
    LOCAL_IMAGE,
    OWNER,
    OWNER_LABEL,
    PROXPI_VERSION,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class Recipe:
    """An image the proxy needs: the configured name, and how to build our own instead."""

    configured: str
    local: str
    resource: str  # directory under orchestrator/resources with the Dockerfile
    build_args: tuple[tuple[str, str], ...]
    ca_secret: bool  # the build fetches over HTTPS and needs the CA bundle


def recipes(settings: ProxySettings) -> tuple[Recipe, Recipe]:
    """proxpi's image and the front's, in that order."""
    return (
        Recipe(
            settings.image,
            LOCAL_IMAGE,
            "proxpi",
            (("BASE_IMAGE", settings.base_image), ("PROXPI_VERSION", PROXPI_VERSION)),
            ca_secret=True,
        ),
        Recipe(
            settings.front_image,
            LOCAL_FRONT_IMAGE,
            "front",
            (("BASE_IMAGE", settings.base_image),),
            ca_secret=False,
        ),
    )


def provide(settings: ProxySettings, base_image: str | None = None) -> tuple[str, ...]:
    """`proxy image`: the proxy's images made available (present, pulled or built, with
    the host's CA bundle when the settings use one), built on ``base_image`` if given."""
    from orchestrator.facts.host import host_ca_bundle  # noqa: PLC0415

    engine.ensure_engine()
    if base_image:
        settings = settings.model_copy(update={"base_image": base_image})
    return tuple(ensure_images(settings, ca_bundle=settings.ca_bundle_path(host_ca_bundle())))


def ensure_images(
    settings: ProxySettings,
    *,
    allow_build: bool = True,
    pull: bool = True,
    ca_bundle: Path | None = None,
) -> tuple[str, str]:
    """The images to run proxpi and the front with, found, pulled or built."""
    backend, front = (
        ensure_image(recipe, allow_build=allow_build, pull=pull, ca_bundle=ca_bundle)
        for recipe in recipes(settings)
    )
    return backend, front


def ensure_image(
    recipe: Recipe, *, allow_build: bool = True, pull: bool = True, ca_bundle: Path | None = None
) -> str:
    """The configured image if present or pullable, else our own, built if need be."""
    docker = engine.client()
    if engine.call("look up image", docker.image.exists, recipe.configured):
        return recipe.configured
    if pull and not _known_unpullable(recipe.configured) and _pull(recipe.configured):
        return recipe.configured
    if engine.call("look up image", docker.image.exists, recipe.local):
        return recipe.local
    if not allow_build:
        raise ProxyUnavailable(
            f"proxy image {recipe.configured} is not here and {recipe.local} is not built "
            "yet: run `orchestrate proxy image`"
        )
    build_image(recipe, ca_bundle)
    return recipe.local


def _pull(image: str) -> bool:
    docker = engine.client()
    try:
        engine.call("pull image", docker.image.pull, image, quiet=True)
    except HandledError as exc:
        log.info("image not pullable; using a local build", image=image)
        log.debug("pull failed", image=image, reason=exc.message, detail=exc.detail)
        _remember_unpullable(image)
        return False
    return True


def _memo(image: str) -> Path:
    """Kept per engine endpoint (DOCKER_HOST, else the CLI's context), as every other
    remembered fact: two contexts on one DOCKER_HOST-less machine are two engines."""
    return paths.fact_file("unpullable", engine_endpoint(), image)


def _known_unpullable(image: str) -> bool:
    return _memo(image).is_file()


def _remember_unpullable(image: str) -> None:
    memo = _memo(image)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"image": image}), encoding="utf-8")


def build_image_argv(recipe: Recipe, ca_bundle: Path | None) -> tuple[str, ...]:
    dockerfile = resources.files("orchestrator.resources").joinpath(f"{recipe.resource}/Dockerfile")
    context = Path(str(dockerfile)).parent
    argv = ["docker", "buildx", "build", "--file", str(context / "Dockerfile")]
    for key, value in recipe.build_args:
        argv += ["--build-arg", f"{key}={value}"]
    if ca_bundle is not None and recipe.ca_secret:
        argv += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    argv += ["--label", f"{OWNER_LABEL}={OWNER}", "--tag", recipe.local, "--load", str(context)]
    return tuple(argv)


def build_image(recipe: Recipe, ca_bundle: Path | None) -> None:
    log.info("building proxy image", image=recipe.local)
    argv = build_image_argv(recipe, ca_bundle)
    if current_engine().stream(argv) != 0:
        raise ProxyUnavailable(
            f"could not build the proxy image {recipe.local}: see the build output above",
            detail=" ".join(argv),
        )
