"""Planning `orchestrate bake` in-process: overrides, entitlements and the compose route."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds import bake
from orchestrator.errors import BadInput
from orchestrator.facts.model import BuilderFacts, HostFacts, ImageFacts, ProxyFacts
from orchestrator.plan.model import BuildOptions
from orchestrator.profiles import ProfileStore
from tests.conftest import write_profile

OLD = BuilderFacts(buildx_version="0.13.1")
NEW = BuilderFacts(buildx_version="0.29.1", bake_network=True, bake_fs_entitlements=True)
PIP = "FROM python\nRUN pip install requests\n"


def make(
    profiles_dir: Path, tmp_path: Path, builder: BuilderFacts, profile: str = ""
) -> bake.BakePlan:
    """Two targets with their own contexts, planned for a profile and a healthy proxy."""
    definition: dict[str, Any] = {"target": {}}
    for name in ("one", "two"):
        context = tmp_path / name
        context.mkdir(exist_ok=True)
        (context / "Dockerfile").write_text(PIP)
        definition["target"][name] = {
            "context": str(context),
            "dockerfile": "Dockerfile",
            "tags": [f"example/{name}"],
            "args": {"A": name},
        }
    write_profile(profiles_dir, "app", f"context: ../ctx\nca_bundle: off\n{profile}")
    facts = HostFacts(
        uid=1000,
        gid=1000,
        user_name="dev",
        builder=builder,
        proxy=ProxyFacts(healthy=True, reason="served"),
        render_dir=tmp_path / "rendered",
    )
    return bake.plan_bake(
        ProfileStore(profiles_dir).resolve("app"),
        definition,
        files=[tmp_path / "docker-bake.hcl"],
        targets=[],
        facts=facts,
        options=BuildOptions(),
    )


def test_every_target_is_planned_with_the_profile_s_wiring(
    profiles_dir: Path, tmp_path: Path
) -> None:
    plan = make(profiles_dir, tmp_path, NEW)
    assert set(plan.plans) == {"one", "two"}
    assert all(p.mode == "proxy" and p.network == "host" for p in plan.plans.values())
    target = plan.override()["target"]["one"]
    assert target["network"] == "host"
    assert target["args"]["A"] == "one"
    assert target["output"] == ["type=docker"]
    assert any(s.startswith("id=orchestrator-env,env=") for s in target["secret"])


def test_new_buildx_is_allowed_host_networking_and_exactly_our_files(
    profiles_dir: Path, tmp_path: Path
) -> None:
    plan = make(profiles_dir, tmp_path, NEW)
    flags = plan.allow()
    assert "--allow=network.host" in flags
    reads = [f.removeprefix("--allow=fs.read=") for f in flags if "fs.read" in f]
    assert len(reads) == len(set(reads))
    rendered = {str(p.rendered_path) for p in plan.plans.values()}
    assert set(reads) == {*rendered, "/nonexistent/sitecustomize.py"}, "and pip's lock"
    assert not plan.compose_network
    assert "override's `network` attribute" in plan.network_route


def test_old_buildx_gets_host_networking_from_a_merged_compose_file(
    profiles_dir: Path, tmp_path: Path
) -> None:
    plan = make(profiles_dir, tmp_path, OLD)
    assert plan.allow() == []  # buildx 0.13 knows no --allow
    assert "network" not in plan.override()["target"]["one"]
    assert plan.compose_network
    compose = json.loads(plan.compose())
    assert compose == {
        "services": {"one": {"build": {"network": "host"}}, "two": {"build": {"network": "host"}}}
    }
    assert "compose file merged by target name" in plan.network_route


def test_files_under_the_working_directory_need_no_grant(
    profiles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make(profiles_dir, tmp_path, NEW)
    inside = bake.BakePlan(plan.files, plan.targets, plan.plans, plan.facts, cwd=tmp_path)
    assert [f for f in inside.allow() if "fs.read" in f] == [
        "--allow=fs.read=/nonexistent/sitecustomize.py"  # orchestrator's own, elsewhere
    ]


def test_settings_read_from_files_for_plain_bake(profiles_dir: Path, tmp_path: Path) -> None:
    plan = make(profiles_dir, tmp_path, NEW)
    file = tmp_path / "settings.env"
    target = plan.override({"ORCHESTRATE_BUILD_ENV": file})["target"]["two"]
    assert f"id=orchestrator-env,src={file}" in target["secret"]
    argv = plan.argv([tmp_path / "override.json"], [file])
    assert f"--allow=fs.read={file}" in argv
    assert argv[:3] == ["docker", "buildx", "bake"]
    assert argv[argv.index(str(tmp_path / "override.json")) - 1] == "--file"


def test_a_profile_builder_is_named_on_the_command_line(profiles_dir: Path, tmp_path: Path) -> None:
    plan = make(profiles_dir, tmp_path, NEW, profile="builder: ci\n")
    assert plan.argv([])[3:5] == ["--builder", "ci"]


def test_a_target_without_its_dockerfile_is_bad_input(profiles_dir: Path, tmp_path: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\n")
    resolved = ProfileStore(profiles_dir).resolve("app")
    with pytest.raises(BadInput, match=r"bake target 'x': Dockerfile .* does not exist"):
        bake.target_profile(resolved, "x", {"context": str(tmp_path / "missing")})


def test_each_target_s_base_images_are_asked_with_its_own_args(
    profiles_dir: Path, tmp_path: Path
) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\n")
    (tmp_path / "Dockerfile").write_text("ARG A\nFROM base-${A}\nFROM scratch\n")
    asked: list[list[str | None]] = []

    def images(refs: Iterable[str | None]) -> dict[str, ImageFacts]:
        asked.append(list(refs))
        return {str(ref): ImageFacts(present=True, id=f"sha256:{ref}") for ref in asked[-1]}

    targets = {name: {"context": str(tmp_path), "args": {"A": name}} for name in ("one", "two")}
    plan = bake.plan_bake(
        ProfileStore(profiles_dir).resolve("app"),
        {"target": targets},
        files=[tmp_path / "f.hcl"],
        targets=[],
        facts=HostFacts(),
        options=BuildOptions(),
        images=images,
    )
    assert asked == [["base-one"], ["base-two"]]
    [seeded] = [d.choice for d in plan.plans["two"].decisions if d.topic == "FROM line 2"]
    assert seeded == "base-two: no USER, WORKDIR or cache variable of its own"


def test_no_selected_target_is_bad_input(profiles_dir: Path, tmp_path: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\n")
    with pytest.raises(BadInput, match="no bake targets selected"):
        bake.plan_bake(
            ProfileStore(profiles_dir).resolve("app"),
            {"target": {}},
            files=[tmp_path / "f.hcl"],
            targets=[],
            facts=HostFacts(),
            options=BuildOptions(),
        )
