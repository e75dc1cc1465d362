"""Dockerfiles: read with BuildKit's parser (``parse``), understood (``commands``), and
rendered as a build-time copy (``render``)."""

from orchestrator.dockerfile.parse import (
    VARIABLE,
    Copy,
    ParsedDockerfile,
    RunStep,
    Seed,
    Stage,
    expand,
    parse,
    parse_text,
)
from orchestrator.dockerfile.render import RunWiring, render

__all__ = [
    "VARIABLE",
    "Copy",
    "ParsedDockerfile",
    "RunStep",
    "RunWiring",
    "Seed",
    "Stage",
    "expand",
    "parse",
    "parse_text",
    "render",
]
