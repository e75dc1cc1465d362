"""The proxy image: the configured one if present or pullable, else our own, built locally.

Looking for an image that no registry serves costs a failed pull each time; the answer is
remembered per image and engine (``facts_dir``), so a machine without a registry pays it
once, not at every proxy start.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from orchestrator import paths
from orchestrator.engine import client as engine
from orchestrator.engine import process
from orchestrator.errors import HandledError, ProxyUnavailable
from orchestrator.log import get_logger
from orchestrator.profiles import ProxySettings
from orchestrator.proxy.spec import LOCAL_IMAGE, OWNER, OWNER_LABEL, PROXPI_VERSION

log = get_logger(__name__)


def ensure_image(
    settings: ProxySettings,
    *,
    allow_build: bool = True,
    pull: bool = True,
    ca_bundle: Path | None = None,
) -> str:
    """The configured image if present or pullable, else our own, built if need be."""
    docker = engine.client()
    if engine.call("look up image", docker.image.exists, settings.image):
        return settings.image
    if pull and not _known_unpullable(settings.image) and _pull(settings.image):
        return settings.image
    if engine.call("look up image", docker.image.exists, LOCAL_IMAGE):
        return LOCAL_IMAGE
    if not allow_build:
        raise ProxyUnavailable(
            f"proxy image {settings.image} is not here and {LOCAL_IMAGE} is not built yet: "
            "run `orchestrate proxy image`"
        )
    build_image(settings.base_image, ca_bundle)
    return LOCAL_IMAGE


def _pull(image: str) -> bool:
    docker = engine.client()
    try:
        engine.call("pull image", docker.image.pull, image, quiet=True)
    except HandledError as exc:
        log.info("proxy image not pullable; using a local build", image=image)
        log.debug("pull failed", image=image, reason=exc.message, detail=exc.detail)
        _remember_unpullable(image)
        return False
    return True


def _memo(image: str) -> Path:
    engine_id = os.environ.get("DOCKER_HOST", "default")
    key = hashlib.sha256(f"{engine_id}\0{image}".encode()).hexdigest()[:16]
    return paths.facts_dir() / f"unpullable-{key}.json"


def _known_unpullable(image: str) -> bool:
    return _memo(image).is_file()


def _remember_unpullable(image: str) -> None:
    memo = _memo(image)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"image": image}), encoding="utf-8")


def build_image_argv(base_image: str, ca_bundle: Path | None) -> tuple[str, ...]:
    dockerfile = resources.files("orchestrator.resources").joinpath("proxpi/Dockerfile")
    context = Path(str(dockerfile)).parent
    argv = ["docker", "buildx", "build", "--file", str(context / "Dockerfile")]
    argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    argv += ["--build-arg", f"PROXPI_VERSION={PROXPI_VERSION}"]
    if ca_bundle is not None:
        argv += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    argv += ["--label", f"{OWNER_LABEL}={OWNER}", "--tag", LOCAL_IMAGE, "--load", str(context)]
    return tuple(argv)


def build_image(base_image: str, ca_bundle: Path | None) -> None:
    log.info("building proxy image", image=LOCAL_IMAGE, base_image=base_image)
    argv = build_image_argv(base_image, ca_bundle)
    if process.stream(argv) != 0:
        raise ProxyUnavailable(
            f"could not build the proxy image {LOCAL_IMAGE} from {base_image}: "
            "see the build output above",
            detail=" ".join(argv),
        )
