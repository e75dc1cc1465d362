"""Plans remembered between runs, so a repeated build skips reading, validating and planning.

Starting Python and importing pydantic, PyYAML and the Dockerfile parser costs more than
orchestrator's whole overhead budget for a build (docs/benchmarks.md). A plan depends on
the profile files, the Dockerfile, the context files that wiring reads, the facts and the
command-line options, and on nothing else: the entry names every file by content hash and
the facts by value, and is used only when all of them are the same now; anything else
plans afresh and replaces it. What the facts need from the profile and the Dockerfile
(the builder's name, the proxy's URL, health project, upstream and digest, the base
images' names) is kept with the entry, so that gathering them again needs neither
pydantic nor the parser; only the base images are asked of Docker again (their ENV, USER
and WORKDIR, by value: a base image rebuilt under the same name plans again).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from orchestrator import __version__, paths
from orchestrator.facts.model import HostFacts
from orchestrator.plan.model import BuildOptions, BuildPlan, Bypass, Decision

FORMAT = 2
_PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ProxyKey:
    """What the proxy's fast check needs, taken from the profile when the plan was made."""

    host_url: str
    health_project: str
    index: str
    digest: str  # the wanted settings' digest, which the front answers at /_orchestrator/id
    name: str = ""  # the proxy's container name, for messages
    remember: float = 30.0  # seconds an upstream seen up is taken to be up (index TTL, 30 s)


@dataclass(frozen=True)
class Entry:
    """A remembered plan and what it was made from."""

    plan: BuildPlan
    facts: dict[str, Any]  # facts_key of the facts it was planned with
    builder: str | None  # the profile's builder name
    proxy: ProxyKey | None  # None: the plan did not ask for the proxy
    context_files: dict[str, str]  # relative path -> absolute path, read as facts
    base_images: tuple[str, ...] = ()  # the images its stages start from, asked again


def code_stamp() -> str:
    """Changes whenever orchestrator's code does (a new release, or an edit in a checkout)."""
    newest = max((p.stat().st_mtime_ns for p in _PACKAGE.rglob("*.py")), default=0)
    return f"{__version__}:{newest}"


def digest_files(files: list[str]) -> dict[str, str]:
    found = {}
    for name in files:
        try:
            found[name] = hashlib.sha256(Path(name).read_bytes()).hexdigest()
        except OSError:
            found[name] = "-"
    return found


def facts_key(facts: HostFacts, options: BuildOptions) -> dict[str, Any]:
    """The facts a plan depends on, by value; the --fresh token is not one of them."""
    data = asdict(facts)
    data["fresh_token"] = ""
    data["env_names"] = sorted(data["env_names"])
    data["options"] = asdict(options)
    loaded: dict[str, Any] = json.loads(json.dumps(data, sort_keys=True, default=str))
    return loaded


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Which facts changed, for the debug log that says why a plan was made again."""
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def entry_path(profiles_dir: Path, name: str, options: BuildOptions, engine: str) -> Path:
    """One entry per profile, options and engine endpoint: a plan made for one engine
    (its builder, its proxy) is never used for another."""
    key = json.dumps([str(profiles_dir.resolve()), name, asdict(options), engine])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return paths.cache_dir() / "plans" / f"{digest}.json"


def save(path: Path, entry: Entry, inputs: list[Path]) -> None:
    """Keep the entry, its input files' hashes beside it; a failure only costs speed."""
    data = {
        "format": FORMAT,
        "code": code_stamp(),
        "inputs": digest_files([str(p) for p in inputs]),
        "facts": entry.facts,
        "builder": entry.builder,
        "proxy": asdict(entry.proxy) if entry.proxy else None,
        "context_files": entry.context_files,
        "base_images": list(entry.base_images),
        "plan": plan_to_dict(entry.plan),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # credentials
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data))
        temporary.replace(path)
    except OSError:
        return


def load(path: Path) -> Entry | None:
    """The entry, if this code wrote it and none of its input files changed since."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("code") != code_stamp():
            return None
        inputs = data["inputs"]
        if digest_files(list(inputs)) != inputs:
            return None
        proxy = data["proxy"]
        return Entry(
            plan=plan_from_dict(data["plan"]),
            facts=dict(data["facts"]),
            builder=data["builder"],
            proxy=ProxyKey(**proxy) if proxy else None,
            context_files=dict(data["context_files"]),
            base_images=tuple(str(image) for image in data["base_images"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def plan_to_dict(plan: BuildPlan) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for item in fields(plan):
        value = getattr(plan, item.name)
        if item.name in ("decisions", "bypasses"):
            value = [asdict(d) for d in value]
        elif item.name == "files":
            value = {str(k): v for k, v in value.items()}
        data[item.name] = value
    loaded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return loaded


def plan_from_dict(data: dict[str, Any]) -> BuildPlan:
    rendered = data["rendered_path"]
    return BuildPlan(
        profile=data["profile"],
        sources=tuple(Path(p) for p in data["sources"]),
        mode=data["mode"],
        argv=tuple(data["argv"]),
        context=Path(data["context"]),
        dockerfile=Path(data["dockerfile"]),
        tags=tuple(data["tags"]),
        decisions=tuple(Decision(**d) for d in data["decisions"]),
        index_url=data["index_url"],
        build_env=data["build_env"],
        rendered_path=Path(rendered) if rendered is not None else None,
        rendered_text=data["rendered_text"],
        prepare=tuple(tuple(p) for p in data["prepare"]),
        build_args=data["build_args"],
        secrets=tuple(data["secrets"]),
        ssh=tuple(data["ssh"]),
        labels=data["labels"],
        network=data["network"],
        secret_env=data["secret_env"],
        files={Path(k): v for k, v in data["files"].items()},
        proxy_front=data.get("proxy_front"),
        proxy_name=data.get("proxy_name", ""),
        credentials_url=data.get("credentials_url"),
        credentials_source=data.get("credentials_source"),
        outage=data.get("outage"),
        bypasses=tuple(Bypass(**b) for b in data.get("bypasses", ())),
    )
