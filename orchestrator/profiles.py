"""Build profiles: YAML files validated by pydantic, with ``extends:`` inheritance.

A profile is read as layers (the named file, then the one it extends, and so on), merged
parent-first, and validated once as a whole. Each top-level key remembers which file set
it, so an error names the file the user has to edit, not the file we happened to read
last. Relative paths are resolved against the file that wrote them, as compose does.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from orchestrator.errors import BadInput
from orchestrator.urls import redact_all

PROFILE_SUFFIXES = (".yaml", ".yml")
PROFILES_DIR_ENV = "ORCHESTRATE_PROFILES_DIR"
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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


ArgValue = Annotated[str, BeforeValidator(_scalar_to_str)]


def _off(value: object) -> object:
    """YAML 1.1 reads a bare ``off`` as False; these settings mean the word."""
    return "off" if value is False else value


Switch = BeforeValidator(_off)

DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _mode_shorthand(value: object) -> object:
    """Allow ``proxy: off`` (YAML reads it as False) and ``proxy: require``."""
    if value is False:
        return {"mode": "off"}
    if isinstance(value, str):
        return {"mode": value}
    return value


class ProxySettings(BaseModel):
    """The caching PyPI proxy (proxpi) that builds get their packages through."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Annotated[Literal["auto", "require", "off"], Switch] = Field(
        "auto",
        description="auto: use the proxy when it can serve, else fall back to cache mounts; "
        "require: fail when it cannot; off: never use it.",
    )
    url: str | None = Field(
        None,
        description="An external shared proxy's index URL, used as given; "
        "no container is managed then.",
    )
    name: str = Field("orchestrator-proxpi", description="Container name of the managed proxy.")
    network: str = Field(
        "orchestrator",
        description="User-defined Docker network the proxy joins (created if missing).",
    )
    bind: str = Field(
        "127.0.0.1",
        description="Host address the port is published on. Anything but loopback shares "
        "the cache with the network.",
    )
    port: int = Field(5000, ge=1, le=65535, description="Host port published for the proxy.")
    bridge: bool = Field(
        False,
        description="Also publish the port on the default bridge's gateway address (such as "
        "172.17.0.1): reachable from containers on this host, not from other machines. "
        "`orchestrate bake` needs it, since bake cannot use host networking before buildx 0.17.",
    )
    image: str = Field(
        "epicwink/proxpi:v1.3.1",
        description="Image to run; when absent and not pullable, orchestrator builds its own.",
    )
    base_image: str = Field(
        "python:3.12-slim", description="Base image for building the proxy image locally."
    )
    cache_volume: str = Field(
        "orchestrator-proxpi-cache", description="Named volume holding the package cache."
    )
    cache_size: int = Field(
        20 * 1024**3, ge=0, description="Bytes of package files the proxy keeps (LFU eviction)."
    )
    index: str = Field("https://pypi.org/simple/", description="Upstream index the proxy mirrors.")
    index_ttl: int = Field(1800, ge=0, description="Seconds an upstream index page is cached.")
    extra_indexes: tuple[str, ...] = Field(
        (),
        description="Further upstream indexes (private ones belong here, never as a pip "
        "extra-index-url inside builds).",
    )
    extra_index_ttl: int = Field(180, ge=0, description="Seconds extra indexes' pages are cached.")
    download_timeout: float = Field(
        900,
        gt=0,
        description="Seconds the proxy waits for a cold file before redirecting the client "
        "upstream; high, so builds never need the upstream themselves.",
    )
    ca_bundle: Annotated[Literal["auto", "off"] | Path, Switch] = Field(
        "auto",
        description="CA bundle the proxy trusts for upstream HTTPS: auto (the host's bundle, "
        "when present), off, or a path.",
    )
    health_project: str = Field(
        "pip", description="Project whose index page the readiness check fetches."
    )
    startup_timeout: float = Field(
        30, gt=0, description="Seconds to wait for a started proxy to become ready."
    )

    @property
    def host_url(self) -> str:
        return self.url or f"http://{_url_host(self.bind)}:{self.port}/index/"

    def ca_bundle_path(self) -> Path | None:
        return _ca_bundle_path(self.ca_bundle)


def _ca_bundle_path(setting: str | Path) -> Path | None:
    if setting == "off":
        return None
    if setting == "auto":
        return DEFAULT_CA_BUNDLE if DEFAULT_CA_BUNDLE.is_file() else None
    return Path(setting)


def _url_host(bind: str) -> str:
    """A wildcard bind is reached through loopback; an IPv6 literal needs brackets."""
    if bind in ("0.0.0.0", ""):  # noqa: S104 - reading, not binding
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind


class BuildUser(BaseModel):
    """Who the image's build user is: USER_NAME, USER_ID and GROUP_ID build args."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="USER_NAME build arg.")
    uid: int = Field(ge=0, description="USER_ID build arg.")
    gid: int = Field(ge=0, description="GROUP_ID build arg.")


def _secret_id(value: str) -> str:
    """Ids go into `--secret id=...,src=...`: a comma or '=' would inject options."""
    if not PROFILE_NAME.fullmatch(value):
        raise ValueError("use letters, digits, '.', '_' and '-' only")
    if value.startswith("orchestrator-"):
        raise ValueError("ids starting with 'orchestrator-' are reserved")
    return value


SecretId = Annotated[str, AfterValidator(_secret_id)]


class Secret(BaseModel):
    """A BuildKit secret, read from a file or an environment variable, never a build arg."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = Field(None, description="File holding the secret, relative to the profile.")
    env: str | None = Field(None, description="Environment variable holding the secret.")

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self


class Profile(BaseModel):
    """One build, described once and reused by `orchestrate build` and `orchestrate bake`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="One line shown by `orchestrate profiles list`.")
    extends: str | None = Field(
        None,
        description="Name of a profile in the same directory whose settings this one inherits.",
    )
    context: Path = Field(description="Build context directory, relative to this profile file.")
    dockerfile: str = Field(
        "Dockerfile", description="Dockerfile path, relative to the context (as in bake)."
    )
    target: str | None = Field(None, description="Build stage to stop at (`--target`).")
    tags: tuple[str, ...] = Field((), description="Image tags (`--tag`).")
    build_args: dict[str, ArgValue] = Field(
        default_factory=dict, description="Build arguments (`--build-arg`); merged with parents'."
    )
    labels: dict[str, ArgValue] = Field(
        default_factory=dict, description="Image labels (`--label`); merged with parents'."
    )
    platforms: tuple[str, ...] = Field(
        (), description="Target platforms (`--platform`); empty means the engine's own."
    )
    builder: str | None = Field(
        None, description="buildx builder to use; unset means the current one."
    )
    progress: Literal["auto", "plain", "tty", "quiet"] = Field(
        "auto", description="How BuildKit reports progress."
    )
    user: Annotated[Literal["host", "off"] | BuildUser, Switch] = Field(
        "host",
        description="USER_NAME/USER_ID/GROUP_ID build args: host (the invoking user; "
        "1000 when that is root), off, or {name, uid, gid}. Passed only to Dockerfiles "
        "that declare them.",
    )
    ssh: bool = Field(False, description="Forward the ssh-agent (`--ssh default=$SSH_AUTH_SOCK`).")
    ca_bundle: Annotated[Literal["auto", "off"] | Path, Switch] = Field(
        "auto",
        description="CA bundle given to RUN steps as a secret: auto (the host's, when "
        "present), off, or a path relative to the profile.",
    )
    secrets: dict[SecretId, Secret] = Field(
        default_factory=dict, description="BuildKit secrets by id: {file: PATH} or {env: VAR}."
    )
    cache_namespace: str = Field(
        "orchestrator",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Prefix of the fallback's cache mount ids ({namespace}-pip-{uid}); "
        "profiles that share it share one package cache.",
    )
    network: Literal["auto", "host", "default"] = Field(
        "auto",
        description="Build network: auto (host when the proxy or index is on this "
        "machine's loopback), host, or the engine's default bridge.",
    )
    proxy: Annotated[ProxySettings, BeforeValidator(_mode_shorthand)] = Field(
        default_factory=ProxySettings,
        description="The caching PyPI proxy; `proxy: off` or `proxy: require` is a shorthand "
        "for its mode.",
    )

    @property
    def dockerfile_path(self) -> Path:
        return self.context / self.dockerfile

    def ca_bundle_path(self) -> Path | None:
        return _ca_bundle_path(self.ca_bundle)


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile merged with everything it extends, and where each part came from."""

    name: str
    profile: Profile
    sources: tuple[Path, ...]

    def as_dict(self) -> dict[str, Any]:
        data = self.profile.model_dump(mode="json", exclude={"extends"})
        data["dockerfile_path"] = str(self.profile.dockerfile_path)
        shown = {"name": self.name, "sources": [str(s) for s in self.sources], **data}
        return dict(redact_all(shown))


@dataclass(frozen=True)
class _Layer:
    path: Path
    data: dict[str, Any]
    node: yaml.Node | None


class ProfileStore:
    """The profiles directory: lists, loads and resolves profiles by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_option(cls, directory: Path | None) -> ProfileStore:
        chosen = directory or Path(os.environ.get(PROFILES_DIR_ENV) or "profiles")
        return cls(chosen)

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            raise BadInput(
                f"{self.directory}: profiles directory not found "
                f"(use --profiles-dir or {PROFILES_DIR_ENV})"
            )
        found = {
            p.stem
            for p in self.directory.iterdir()
            if p.suffix in PROFILE_SUFFIXES and p.is_file() and PROFILE_NAME.fullmatch(p.stem)
        }
        return sorted(found)

    def path_of(self, name: str) -> Path:
        if not PROFILE_NAME.fullmatch(name):
            raise BadInput(
                f"{self.directory}: '{name}' is not a profile name "
                "(letters, digits, '.', '_' and '-', as in the file name without .yaml)"
            )
        for suffix in PROFILE_SUFFIXES:
            candidate = self.directory / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
        known = self.names()
        hint = difflib.get_close_matches(name, known, n=1)
        advice = (
            f"did you mean '{hint[0]}'?" if hint else f"available: {', '.join(known) or 'none'}"
        )
        raise BadInput(f"{self.directory}: no profile named '{name}' ({advice})")

    def resolve(self, name: str) -> ResolvedProfile:
        layers = list(self._chain(name))
        merged, origins = _merge(layers)
        merged.pop("extends", None)
        try:
            profile = Profile.model_validate(merged)
        except ValidationError as exc:
            raise BadInput(_describe(exc, layers, origins)) from None
        resolved = ResolvedProfile(name, profile, tuple(layer.path for layer in layers))
        _check_paths(resolved, origins, layers[0].path)
        return resolved

    def _chain(self, name: str) -> Iterator[_Layer]:
        """Yield the named profile first, then each ancestor; refuse cycles."""
        seen: list[str] = []
        current: str | None = name
        while current is not None:
            if current in seen:
                cycle = " -> ".join([*seen, current])
                raise BadInput(f"{self.path_of(seen[-1])}: field 'extends': cycle {cycle}")
            seen.append(current)
            layer = _read_layer(self.path_of(current))
            yield layer
            parent = layer.data.get("extends")
            if parent is not None and not isinstance(parent, str):
                raise BadInput(f"{layer.path}: field 'extends': must be a profile name")
            current = parent


def _read_layer(path: Path) -> _Layer:
    text = read_text(path, "profile")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # kept for line numbers in error messages
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInput(f"{path}{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a profile must be a mapping of keys to values")
    return _Layer(path, _normalize(data, path.parent), node)


def read_text(path: Path, what: str) -> str:
    """A file's text, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the {what}: {exc.strerror}") from None


def _normalize(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Before layers merge: expand shorthands, and resolve paths against their own file."""
    out = dict(data)
    if "proxy" in out:
        out["proxy"] = _mode_shorthand(out["proxy"])
    context = out.get("context")
    if isinstance(context, str):
        out["context"] = str((base / context).resolve())
    out["ca_bundle"] = _path_setting(out.get("ca_bundle"), base)
    proxy = out.get("proxy")
    if isinstance(proxy, dict) and "ca_bundle" in proxy:
        out["proxy"] = {**proxy, "ca_bundle": _path_setting(proxy["ca_bundle"], base)}
    secrets = out.get("secrets")
    if isinstance(secrets, dict):
        out["secrets"] = {
            key: {**value, "file": _path_setting(value["file"], base)}
            if isinstance(value, dict) and isinstance(value.get("file"), str)
            else value
            for key, value in secrets.items()
        }
    if out["ca_bundle"] is None:
        del out["ca_bundle"]
    return out


def _path_setting(value: object, base: Path) -> object:
    """A relative path in a profile means relative to that profile's file."""
    if isinstance(value, str) and value not in ("auto", "off"):
        return str((base / Path(value).expanduser()).resolve())
    return value


def _merge(layers: list[_Layer]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Merge ancestors first; mappings merge key by key, anything else is replaced."""
    merged: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    for layer in reversed(layers):
        for key, value in layer.data.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
            origins[key] = layer.path
    return merged, origins


def _describe(exc: ValidationError, layers: list[_Layer], origins: dict[str, Path]) -> str:
    """One line: the file, the line, the field and what to do about it."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc)
    path = origins.get(loc[0], layers[0].path) if loc else layers[0].path
    node = next((layer.node for layer in layers if layer.path == path), None)
    line = _line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    if error["type"] == "extra_forbidden":
        fields = ProxySettings.model_fields if loc[0] == "proxy" else Profile.model_fields
        hint = difflib.get_close_matches(loc[-1], list(fields), n=1)
        advice = f"did you mean '{hint[0]}'?" if hint else "see `orchestrate profiles schema`"
        return f"{where}: unknown field '{field}' ({advice}){suffix}"
    if error["type"] == "missing":
        return f"{where}: field '{field}' is required but not set here or in any parent{suffix}"
    got = json.dumps(error.get("input"), default=str)
    return f"{where}: field '{field}': {error['msg']} (got {got}){suffix}"


def _line_of(node: yaml.Node | None, loc: list[str]) -> int | None:
    """Line number of a key in the YAML source, so editors can jump to it."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _check_paths(resolved: ResolvedProfile, origins: dict[str, Path], leaf: Path) -> None:
    profile = resolved.profile
    if not profile.context.is_dir():
        where = origins.get("context", leaf)
        raise BadInput(f"{where}: field 'context': directory {profile.context} does not exist")
    if not profile.dockerfile_path.is_file():
        where = origins.get("dockerfile", origins.get("context", leaf))
        raise BadInput(f"{where}: field 'dockerfile': {profile.dockerfile_path} does not exist")
    files = {
        "ca_bundle": profile.ca_bundle_path() if profile.ca_bundle != "auto" else None,
        "proxy.ca_bundle": profile.proxy.ca_bundle_path()
        if profile.proxy.ca_bundle != "auto"
        else None,
        **{f"secrets.{key}.file": secret.file for key, secret in profile.secrets.items()},
    }
    for field_name, path in files.items():
        if path is not None and not path.is_file():
            where = origins.get(field_name.split(".")[0], leaf)
            raise BadInput(f"{where}: field '{field_name}': file {path} does not exist")


def json_schema() -> dict[str, Any]:
    """JSON Schema for profile files, for YAML editors (yaml-language-server)."""
    schema = Profile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrator build profile"
    schema.pop("required", None)  # a child may inherit `context` from its parent
    return schema
