"""An index behind credentials (issue 20): `proxy.credentials` names where `user:password`
is kept; builds get it inside BuildKit secrets only, read when the build runs, and no plan,
printed or remembered, nor any argv or log ever holds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import dockerfile
from orchestrator.builds.execute import settings_env
from orchestrator.builds.store import plan_to_dict
from orchestrator.errors import BadInput
from orchestrator.facts.host import check_inputs, read_credentials
from orchestrator.facts.model import BuilderFacts, HostFacts, ProxyFacts, RunFacts
from orchestrator.plan.build import plan_build
from orchestrator.plan.containers import RunOptions
from orchestrator.plan.model import BuildPlan
from orchestrator.plan.wiring import plan_wiring
from orchestrator.profiles import ProfileStore, ProxySettings, ResolvedProfile
from orchestrator.proxy.spec import proxy_spec
from tests.conftest import write_profile

PASSWORD = "pa:ss@w/rd"
URL = "https://repo.example.com/api/pypi/simple/"
PIP = "FROM python\nRUN pip install demo\n"


def resolved(profiles_dir: Path, proxy: str) -> ResolvedProfile:
    (profiles_dir.parent / "ctx" / "Dockerfile").write_text(PIP)
    write_profile(profiles_dir, "app", f"context: ../ctx\nca_bundle: off\nproxy:\n{proxy}")
    return ProfileStore(profiles_dir).resolve("app")


def plan(app: ResolvedProfile, proxy: ProxyFacts | None) -> BuildPlan:
    facts = HostFacts(builder=BuilderFacts(), proxy=proxy, render_dir=Path("/r"))
    return plan_build(app, dockerfile.parse(app.profile.dockerfile_path), facts)


EXTERNAL = f"  url: {URL}\n  credentials: {{env: REPO_AUTH}}\n"


def test_a_plan_names_where_the_credentials_are_never_what_they_are(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPO_AUTH", f"ci:{PASSWORD}")
    made = plan(resolved(profiles_dir, EXTERNAL), ProxyFacts(healthy=True, reason="ok"))
    assert made.mode == "proxy"
    assert (made.credentials_url, made.credentials_source) == (URL, "env:REPO_AUTH")
    remembered = json.dumps(plan_to_dict(made))
    assert "pa:ss" not in remembered
    assert "pa%3Ass" not in remembered
    assert URL in made.secret_env["ORCHESTRATE_BUILD_ENV"]


def test_the_build_s_settings_secret_gets_them_when_it_runs(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPO_AUTH", f"ci:{PASSWORD}")
    made = plan(resolved(profiles_dir, EXTERNAL), ProxyFacts(healthy=True, reason="ok"))
    env = settings_env(made)
    authed = "https://ci:pa%3Ass%40w%2Frd@repo.example.com/api/pypi/simple/"
    assert f"PIP_INDEX_URL={authed}" in env["ORCHESTRATE_BUILD_ENV"]
    assert not [word for word in made.argv if "pa:ss" in word or "pa%3Ass" in word]


def test_the_fallback_reaches_the_index_with_them_too(profiles_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "auth"
    secret.write_text(f"ci:{PASSWORD}\n")
    app = resolved(profiles_dir, f"  index: {URL}\n  credentials: {{file: {secret}}}\n")
    made = plan(app, ProxyFacts(healthy=False, reason="down"))
    assert made.mode == "cache-mount"
    assert made.credentials_source == f"file:{secret}"
    assert "ci:pa%3Ass%40w%2Frd@repo.example.com" in settings_env(made)["ORCHESTRATE_BUILD_ENV"]


def test_a_managed_proxy_passes_them_to_proxpi(tmp_path: Path) -> None:
    spec = proxy_spec(ProxySettings(index=URL), index="https://ci:x@repo.example.com/simple/")
    assert spec.backend.envs["PROXPI_INDEX_URL"] == "https://ci:x@repo.example.com/simple/"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (None, "environment variable REPO_AUTH is not set"),
        ("just-a-token", "give user:password on one line"),
    ],
)
def test_credentials_that_are_not_there_are_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str | None, says: str
) -> None:
    if value is None:
        monkeypatch.delenv("REPO_AUTH", raising=False)
    else:
        monkeypatch.setenv("REPO_AUTH", value)
    with pytest.raises(BadInput, match=says) as refused:
        read_credentials("env:REPO_AUTH", "profiles/app.yaml")
    assert "\n" not in refused.value.message


def test_a_missing_variable_is_found_before_anything_starts(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPO_AUTH", raising=False)
    with pytest.raises(BadInput, match=r"field 'proxy\.credentials\.env'"):
        check_inputs(resolved(profiles_dir, EXTERNAL))


def test_a_container_that_would_show_them_is_refused(profiles_dir: Path) -> None:
    app = resolved(profiles_dir, EXTERNAL)
    facts = RunFacts(host=HostFacts(proxy=ProxyFacts(healthy=True, reason="ok")))
    with pytest.raises(BadInput, match="they reach builds only"):
        plan_wiring(app, facts, RunOptions())
