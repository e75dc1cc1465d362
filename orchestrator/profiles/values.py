"""What one value of a profile may be: names, addresses, URLs, sizes, switches.

Each type refuses, when the profile is read, what would otherwise fail midway through a
build (exit 4) or inside a `docker` command: refused here, it is one line and exit 2.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

from orchestrator.errors import BadInput
from orchestrator.units import SIZE_PATTERN, parse_size

PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # moby daemon/names: two or more


def _no_nul(value: str) -> str:
    """Every string ends up in an argv or a path, where NUL raises instead of failing."""
    if "\x00" in value:
        raise ValueError("contains a NUL character: remove it")
    return value


def _no_nul_path(value: Path) -> Path:
    _no_nul(str(value))
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
HostPath = Annotated[Path, AfterValidator(_no_nul_path)]


def _docker_name(value: str) -> str:
    """Checked here so a bad name fails before any container or volume exists, not midway."""
    if not DOCKER_NAME.fullmatch(value):
        raise ValueError("use letters, digits, '_', '.' and '-', starting with a letter or digit")
    return value


def _one_word(value: str) -> bool:
    """What goes into one argv word or env value of a docker command must be one word."""
    return bool(value) and "\x00" not in value and not any(c.isspace() for c in value)


PREDEFINED_NETWORKS = ("bridge", "host", "none")


def _network_name(value: str) -> str:
    """Docker allows almost anything in a network name, but not these; and its own
    networks will not do: container names resolve only on a user-defined network, and
    one on host or none cannot join another."""
    if not _one_word(value) or "/" in value:
        raise ValueError("give a non-empty name without '/', whitespace or NUL")
    if value in PREDEFINED_NETWORKS:
        raise ValueError(
            "Docker's own networks (bridge, host, none) will not do: give a user-defined "
            "network's name"
        )
    return value


# docker/distribution's reference grammar (distribution/reference, regexp.go), which the
# engine parses a tag by: [HOST[:PORT]/]PATH[:TAG][@DIGEST]. In ASCII, as Go's \w is.
_ALPHANUMERIC = "[a-z0-9]+"
_PATH_COMPONENT = f"{_ALPHANUMERIC}(?:(?:[._]|__|-+){_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    rf"(?::{_TAG})?(?:@{_DIGEST})?"
)


def _image_tag(value: str) -> str:
    """What the engine would refuse only once the build is done (exit 4) is refused here."""
    if not IMAGE_REFERENCE.fullmatch(value):
        raise ValueError("give [HOST[:PORT]/]NAME[:TAG], NAME in lowercase")
    return value


def _image_ref(value: str) -> str:
    """The engine parses the reference itself; what cannot even be one argument stops here."""
    if not _one_word(value):
        raise ValueError("give a non-empty image reference without whitespace or NUL")
    return value


PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508's


def _project_name(value: str) -> str:
    """The readiness check asks the index for this project's page: an empty or invalid
    name asks for the index's root or a page no index has, and the proxy never looks ready."""
    if not PROJECT_NAME.fullmatch(value):
        raise ValueError(
            "give a project name such as pip: letters, digits, '.', '_' and '-', "
            "a letter or digit at each end"
        )
    return value


def _bind_address(value: str) -> str:
    """A host name here would be published as given and fail inside `docker run`."""
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("give an IP address such as 127.0.0.1 or ::1 (no brackets)") from None
    return value


def _http_url(value: str) -> str:
    """The proxy and pip take these as given; a typo would only show as a failed fetch."""
    if not _one_word(value):
        raise ValueError("give an http(s) URL without whitespace or NUL")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"give an http(s) URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("give an http(s) URL with a host, such as https://pypi.org/simple/")
    return value


def _schema_pattern(pattern: str) -> object:
    """Editors using the JSON Schema flag the value as it is typed."""
    return Field(json_schema_extra={"pattern": pattern})


DockerName = Annotated[
    str, AfterValidator(_docker_name), _schema_pattern(f"^{DOCKER_NAME.pattern}$")
]
NetworkName = Annotated[
    str,
    AfterValidator(_network_name),
    Field(
        json_schema_extra={
            "pattern": r"^[^\s/\u0000]+$",
            "not": {"enum": list(PREDEFINED_NETWORKS)},
        }
    ),
]
ImageRef = Annotated[str, AfterValidator(_image_ref), _schema_pattern(r"^[^\s\u0000]+$")]
ImageTag = Annotated[
    str,
    AfterValidator(_no_nul),
    AfterValidator(_image_tag),
    _schema_pattern(f"^{IMAGE_REFERENCE.pattern}$"),
]
ProjectName = Annotated[
    str, AfterValidator(_project_name), _schema_pattern(f"^{PROJECT_NAME.pattern}$")
]
BindAddress = Annotated[str, AfterValidator(_bind_address)]
HttpUrl = Annotated[str, AfterValidator(_http_url), _schema_pattern("^[Hh][Tt][Tt][Pp][Ss]?://")]
Flag = Annotated[bool, Strict()]
"""true or false as YAML writes them: pydantic would also take "yes", "off", 1 or "0",
and a quoted "false" read as true by a person is a setting nobody meant."""


def _scalar_to_str(value: object) -> object:
    """YAML turns ``USER_ID: 1000`` into an int; build args are strings on the wire.

    A float is refused: YAML reads ``3.10`` as 3.1, which is never what was meant.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | datetime.date):
        raise ValueError(f"YAML read {value!r} as a {type(value).__name__}: put it in quotes")
    return value


ArgValue = Annotated[str, BeforeValidator(_scalar_to_str), AfterValidator(_no_nul)]


def _size(value: object) -> object:
    """``20G`` as `orchestrate proxy prune --max-size` reads it, by the same function; a
    number is bytes."""
    if isinstance(value, str):
        try:
            return parse_size(value)
        except BadInput:
            raise ValueError("give bytes or a size such as 500M or 20G (binary units)") from None
    return value


ByteSize = Annotated[
    int,
    BeforeValidator(_size),
    Field(ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": f"^{SIZE_PATTERN}$"},
            ]
        }
    ),
]


def _off(value: object) -> object:
    """YAML 1.1 reads a bare ``off`` as False; these settings mean the word."""
    return "off" if value is False else value


Switch = BeforeValidator(_off)


def _nul_first(value: object) -> object:
    """Before a union tries its members, so a NUL is named as such, not as 'not auto'."""
    return _no_nul(value) if isinstance(value, str) else value


PathSetting = Annotated[Literal["auto", "off"] | HostPath, Switch, BeforeValidator(_nul_first)]

PATH_ACCEPTED = "give auto, off, or a path"
ACCEPTED = {
    "user": "give host, off, or {name, uid, gid}",
    "ca_bundle": PATH_ACCEPTED,
    "proxy": "give auto, require, off, or a mapping of proxy settings",
    "proxy.ca_bundle": PATH_ACCEPTED,
}
"""What a field that takes more than one form accepts: said whole when a value is none
of them, since each form's own complaint ("not 'host' or 'off'") tells half the story."""
