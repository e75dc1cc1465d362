"""Build profiles: YAML files validated by pydantic, with ``extends:`` inheritance.

A profile is read as layers (the named file, then the one it extends, and so on), merged
parent-first, and validated once as a whole. Each value remembers which file set it, down
to the nested keys, so an error names the file and line the user has to edit, not the
file we happened to read last. Relative paths are resolved against the file that wrote
them, as compose does.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator import paths
from orchestrator.errors import BadInput
from orchestrator.inputs import read_text
from orchestrator.paths import PROFILES_DIR_ENV
from orchestrator.profiles.model import (
    BuildUser,
    Profile,
    ProxySettings,
    Secret,
    mode_shorthand,
)
from orchestrator.profiles.problems import first_problem
from orchestrator.profiles.values import PROFILE_NAME
from orchestrator.urls import redact, redact_all

PROFILE_SUFFIXES = (".yaml", ".yml")
SHOWN_CHARS = 60  # of an offending value in a message, at most
MESSAGE_CHARS = 179  # with "orchestrate: error: " before it, a line stays under 200


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


class _NotFound(Exception):
    """Why a name finds no profile; the caller knows which file to blame."""


class ProfileStore:
    """The profiles directory: lists, loads and resolves profiles by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_option(cls, directory: Path | None) -> ProfileStore:
        return cls(paths.profiles_dir(directory))

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
        try:
            return self._find(name)
        except _NotFound as exc:
            raise BadInput(f"{self.directory}: {exc}") from None

    def _find(self, name: str) -> Path:
        if not PROFILE_NAME.fullmatch(name):
            raise _NotFound(
                f"'{_printable(name)}' is not a profile name "
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
        raise _NotFound(f"no profile named '{name}' ({advice})")

    def resolve(self, name: str) -> ResolvedProfile:
        layers = list(self._chain(name))
        merged, origins = _merge(layers)
        merged.pop("extends", None)
        try:
            profile = Profile.model_validate(merged)
        except ValidationError as exc:
            raise BadInput(_describe(exc, merged, layers, origins)) from None
        resolved = ResolvedProfile(name, profile, tuple(layer.path for layer in layers))
        _check_paths(resolved, layers, origins)
        return resolved

    def _chain(self, name: str) -> Iterator[_Layer]:
        """Yield the named profile first, then each ancestor; refuse cycles.

        A bad ``extends`` is blamed on the line that says it, not on the profiles directory.
        """
        seen = [name]
        layer = _read_layer(self.path_of(name))
        while True:
            yield layer
            parent = layer.data.get("extends")
            if parent is None:
                return
            where = f"{_at(layer, ('extends',))}: field 'extends'"
            if not isinstance(parent, str):
                raise BadInput(f"{where}: must be a profile name")
            if parent in seen:
                raise BadInput(f"{where}: cycle {' -> '.join([*seen, parent])}")
            try:
                path = self._find(parent)
            except _NotFound as exc:
                raise BadInput(f"{where}: {exc}") from None
            seen.append(parent)
            layer = _read_layer(path)


def _printable(text: str) -> str:
    """Shown as typed, unless it holds characters a terminal would hide or act on."""
    return text if text.isprintable() else json.dumps(text)[1:-1]


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping: YAML says it is an error, PyYAML keeps the last."""

    def __init__(self, key: object, first: yaml.Node, again: yaml.Node) -> None:
        super().__init__(None, None, f"duplicate key '{key}'", again.start_mark)
        self.key = key
        self.first_line = first.start_mark.line + 1
        self.line = again.start_mark.line + 1


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, at every level, instead of silently
    keeping the last; ``<<`` merge keys may still be overridden, as YAML means them to be."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):  # the base class reports anything else
            _refuse_duplicates(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> None:
    first_seen: dict[object, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            continue  # SafeLoader reports it with its own words
        if key in first_seen:
            raise _DuplicateKey(key, first_seen[key], key_node)
        first_seen[key] = key_node


def _read_layer(path: Path) -> _Layer:
    text = read_text(path, "profile")
    node, data = _parse(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a profile must be a mapping of keys to values")
    return _Layer(path, _normalize(data, path.parent), node)


def _parse(text: str, path: Path) -> tuple[yaml.Node | None, object]:
    """The document and its node tree, kept for line numbers in error messages."""
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    except _DuplicateKey as exc:
        raise BadInput(
            f"{path}:{exc.line}: duplicate key '{_printable(str(exc.key))}' "
            f"(first at line {exc.first_line}): keep one"
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise BadInput(
            f"{path}:{line}: invalid YAML: character #x{exc.character:04x} is not allowed "
            "in a YAML file: remove it"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{path}{where}: invalid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _normalize(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Before layers merge: expand shorthands, and resolve paths against their own file."""
    out = dict(data)
    if "proxy" in out:
        out["proxy"] = mode_shorthand(out["proxy"])
    context = out.get("context")
    if isinstance(context, str) and "\x00" not in context:
        out["context"] = str((base / context).resolve())
    out["ca_bundle"] = _path_setting(out.get("ca_bundle"), base)
    proxy = out.get("proxy")
    if isinstance(proxy, dict) and "ca_bundle" in proxy:
        out["proxy"] = proxy = {**proxy, "ca_bundle": _path_setting(proxy["ca_bundle"], base)}
    credentials = proxy.get("credentials") if isinstance(proxy, dict) else None
    if isinstance(credentials, dict) and isinstance(credentials.get("file"), str):
        credentials = {**credentials, "file": _path_setting(credentials["file"], base)}
        out["proxy"] = {**out["proxy"], "credentials": credentials}
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
    """A relative path in a profile means relative to that profile's file.

    One with a NUL cannot be resolved; it is left for the model to refuse, with its line.
    """
    if isinstance(value, str) and value not in ("auto", "off") and "\x00" not in value:
        return str((base / Path(value).expanduser()).resolve())
    return value


FieldPath = tuple[object, ...]
"""Keys and list indexes from the top of a profile down to one value, as the YAML has them."""


def _merge(layers: list[_Layer]) -> tuple[dict[str, Any], dict[FieldPath, Path]]:
    """Merge ancestors first; mappings merge key by key, anything else is replaced.

    Every path a layer sets is remembered with that layer's file, down to the leaves: when
    a child sets ``proxy.name``, a bad ``proxy.port`` is still the parent's to fix.
    """
    merged: dict[str, Any] = {}
    origins: dict[FieldPath, Path] = {}
    for layer in reversed(layers):
        for key, value in layer.data.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
                for sub, sub_value in value.items():
                    _set_origin(origins, (key, sub), sub_value, layer.path)
            else:
                merged[key] = value
                _set_origin(origins, (key,), value, layer.path)
            origins[(key,)] = layer.path
    return merged, origins


def _set_origin(
    origins: dict[FieldPath, Path], path: FieldPath, value: object, source: Path
) -> None:
    """``value`` replaced whatever was at ``path``: all of it now comes from ``source``."""
    for known in [p for p in origins if p[: len(path)] == path]:
        del origins[known]
    for inner in _paths_in(value, path):
        origins[inner] = source


def _paths_in(value: object, path: FieldPath) -> Iterator[FieldPath]:
    yield path
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _paths_in(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths_in(item, (*path, index))


def _where(path: FieldPath, layers: list[_Layer], origins: dict[FieldPath, Path]) -> str:
    """``file:line`` where ``path`` was set; a path nobody set is the named profile's."""
    source = next(
        (origins[path[:end]] for end in range(len(path), 0, -1) if path[:end] in origins),
        layers[0].path,
    )
    layer = next(layer for layer in layers if layer.path == source)
    return _at(layer, path)


def _at(layer: _Layer, path: FieldPath) -> str:
    line = _line_of(layer.node, path)
    return f"{paths.shown(layer.path)}:{line}" if line else paths.shown(layer.path)


def _describe(
    exc: ValidationError,
    merged: dict[str, Any],
    layers: list[_Layer],
    origins: dict[FieldPath, Path],
) -> str:
    """One line: the file, the line, the field and what to do about it."""
    found = first_problem(exc.errors(), merged)
    error, more = found.error, found.more
    field = ".".join(str(part) for part in found.field)
    where = _where(found.field, layers, origins)
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    if error["type"] == "extra_forbidden":
        fields = _model_at(found.field[:-1]).model_fields
        hint = difflib.get_close_matches(str(found.field[-1]), list(fields), n=1)
        advice = f"did you mean '{hint[0]}'?" if hint else "see `orchestrate profiles schema`"
        return f"{where}: unknown field '{_printable(field)}' ({advice}){suffix}"
    if error["type"] == "missing":
        return f"{where}: field '{field}' is required but not set here or in any parent{suffix}"
    head = f"{where}: field '{_printable(field)}': {found.wanted} (got "
    room = MESSAGE_CHARS - len(head) - len(f"){suffix}")
    return f"{head}{_shown(error.get('input'), room)}){suffix}"


def _model_at(parent: FieldPath) -> type[BaseModel]:
    """The model whose fields a key under ``parent`` is one of, for "did you mean"."""
    if parent == ("proxy",):
        return ProxySettings
    if parent == ("user",):
        return BuildUser
    if parent == ("proxy", "credentials") or (len(parent) == 2 and parent[0] == "secrets"):
        return Secret
    return Profile


def _shown(value: object, room: int) -> str:
    """The offending value, cut to the room the rest of the line leaves it (a dozen
    characters at least: a long path may leave none), so the line stays under 200."""
    limit = min(SHOWN_CHARS, max(room, 12))
    text = redact(json.dumps(value, default=str))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line_of(node: yaml.Node | None, path: FieldPath) -> int | None:
    """Line number of a key in the YAML source, so editors can jump to it."""
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            # the last match: keys a `<<` merge brought in come first and are overridden
            match = next((kv for kv in reversed(node.value) if kv[0].value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _check_paths(
    resolved: ResolvedProfile, layers: list[_Layer], origins: dict[FieldPath, Path]
) -> None:
    """The files a profile names must exist; blame the line that named each one."""
    profile = resolved.profile
    if not profile.context.is_dir():
        where = _where(("context",), layers, origins)
        shown = paths.shown(profile.context)
        raise BadInput(f"{where}: field 'context': directory {shown} does not exist")
    if not profile.dockerfile_path.is_file():
        named_by = ("dockerfile",) if ("dockerfile",) in origins else ("context",)
        where = _where(named_by, layers, origins)
        shown = paths.shown(profile.dockerfile_path)
        raise BadInput(f"{where}: field 'dockerfile': {shown} does not exist")
    files: dict[FieldPath, Path | None] = {
        ("ca_bundle",): profile.ca_bundle_path(None),
        ("proxy", "ca_bundle"): profile.proxy.ca_bundle_path(None),
        **{("secrets", key, "file"): secret.file for key, secret in profile.secrets.items()},
    }
    for field_path, path in files.items():
        if path is not None and not path.is_file():
            where = _where(field_path, layers, origins)
            field = ".".join(str(part) for part in field_path)
            problem = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise BadInput(f"{where}: field '{field}': file {paths.shown(path)} {problem}")


def json_schema() -> dict[str, Any]:
    """JSON Schema for profile files, for YAML editors (yaml-language-server)."""
    schema = Profile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrator build profile"
    schema.pop("required", None)  # a child may inherit `context` from its parent
    return schema
