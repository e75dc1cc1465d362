"""Build profiles: YAML files validated by pydantic, with ``extends:`` inheritance.

A profile is read as layers (the named file, then the one it extends, and so on), merged
parent-first, and validated once as a whole. Each top-level key remembers which file set
it, so an error names the file the user has to edit, not the file we happened to read
last. Relative paths are resolved against the file that wrote them, as compose does.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.errors import BadInput
from orchestrator.inputs import read_text
from orchestrator.profiles.model import (
    PROFILE_NAME,
    Profile,
    ProxySettings,
    mode_shorthand,
)
from orchestrator.urls import redact_all

PROFILE_SUFFIXES = (".yaml", ".yml")
PROFILES_DIR_ENV = "ORCHESTRATE_PROFILES_DIR"


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


def _normalize(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Before layers merge: expand shorthands, and resolve paths against their own file."""
    out = dict(data)
    if "proxy" in out:
        out["proxy"] = mode_shorthand(out["proxy"])
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
        "ca_bundle": profile.ca_bundle_path(None),
        "proxy.ca_bundle": profile.proxy.ca_bundle_path(None),
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
