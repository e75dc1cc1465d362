"""What every measurement of one engine's run shares: the upstream, the profiles, the
commands, and the one way a build is timed and its upstream traffic counted."""

from __future__ import annotations

import json
import re
import shlex
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import engine, progress
from bench.cli import Orchestrate
from bench.fixtures import Fixtures
from bench.infra import Cleanup
from bench.model import Sample
from devsupport.upstream_container import Upstream

BASE_IMAGE = "orchestrator/base:bookworm"
PROXY_IMAGE = "orchestrator/proxpi:1.4.0a1"
BUILD_ENV = "ORCHESTRATE_BUILD_ENV"  # the variable orchestrate feeds its settings secret from


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(wheel: str) -> str:
    """A wheel's project, normalised (PEP 503) as the proxy's file paths name it."""
    return re.sub(r"[-_.]+", "-", wheel.split("-", 1)[0]).lower()


def raw_env(plan: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    """The environment the printed line needs: every ``--secret id=...,env=NAME`` fed, the
    settings one as orchestrate feeds it, the others empty (the benchmark's builds read
    none of them)."""
    env = dict(base)
    for item in plan["argv"]:
        for part in str(item).split(","):
            key, _, value = part.partition("=")
            if key == "env":
                env[value] = ""
    env[BUILD_ENV] = "".join(f"{k}={shlex.quote(v)}\n" for k, v in plan["build_env"].items())
    return env


@dataclass
class Session:
    fixtures: Fixtures
    upstream: Upstream
    network: str
    cleanup: Cleanup
    orchestrate: Orchestrate
    kind: progress.Kind  # what BuildKit's progress is read from: rawjson or plain
    _mark: int = 0  # the upstream's request count before the build being measured

    @property
    def prefix(self) -> str:
        return self.cleanup.prefix

    def tag(self, what: str) -> str:
        return f"orchestrator-bench/{self.cleanup.run_id}:{what}"

    # --- profiles ------------------------------------------------------------------------------

    def proxy_settings(self, suffix: str) -> dict[str, Any]:
        return {
            "name": f"{self.prefix}-proxy-{suffix}",
            "network": self.network,
            "port": free_port(),
            "cache_volume": f"{self.prefix}-cache-{suffix}",
            "index": self.upstream.host_url,
            "health_project": "numpy",
            "ca_bundle": "off",
            "image": PROXY_IMAGE,
            "base_image": BASE_IMAGE,
            "startup_timeout": 120,
        }

    def profile(
        self,
        name: str,
        *,
        proxy: dict[str, Any],
        context: Path | None = None,
        namespace: str | None = None,
        target: str | None = None,
    ) -> str:
        """Write profiles/NAME.yaml (JSON is YAML). No build arg changes between runs: a
        new bust.txt in the context is what re-runs the install step, so a profile built
        before keeps its remembered plan."""
        data = {
            "description": f"benchmark build {name}",
            "context": str(context or self.fixtures.app_context),
            "tags": [self.tag(name)],
            "build_args": {"BASE_IMAGE": BASE_IMAGE},
            "ca_bundle": "off",
            "user": {"name": "app", "uid": 1000, "gid": 1000},
            "network": "host",
            "cache_namespace": namespace or f"{self.prefix}-default",
            "proxy": proxy,
        }
        if target:
            data["target"] = target
        (self.orchestrate.profiles / f"{name}.yaml").write_text(json.dumps(data, indent=2))
        return name

    def proxy_up(self, profile: str) -> None:
        if profile not in self.cleanup.proxy_profiles:
            self.cleanup.proxy_profiles.append(profile)
        self.orchestrate.check(f"up-{profile}", "proxy", "up", "--profile", profile)

    def proxy_down(self, profile: str) -> None:
        self.orchestrate.check(f"down-{profile}", "proxy", "down", "--purge", "--profile", profile)
        if profile in self.cleanup.proxy_profiles:
            self.cleanup.proxy_profiles.remove(profile)

    def empty_installer_caches(self, profile: str) -> None:
        """Empty the cache mounts the profile's install step uses, with a build of their own
        that mounts exactly those (by id, as the plan renders them) and deletes what they
        hold. The front marks files immutable, as PyPI does, so pip's HTTP cache on that
        mount would serve a "cold" proxy build by itself, without asking the proxy."""
        plan = json.loads(
            self.orchestrate.check(f"plan-{profile}", "build", profile, "--dry-run", "--json")
        )
        rendered = Path(plan["rendered_dockerfile"]).read_text()
        mounts = sorted(set(re.findall(r"--mount=type=cache,id=\S+", rendered)))
        targets = [re.search(r"target=([^,\s]+)", m) for m in mounts]
        paths = " ".join(t.group(1) for t in targets if t)
        context = self.orchestrate.profiles.parent / "empty-caches"
        context.mkdir(exist_ok=True)
        (context / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\nARG BUST\n"
            f'RUN {" ".join(mounts)} echo "$BUST" && find {paths} -mindepth 1 -delete\n'
        )
        emptied = engine.build(
            context,
            tag=self.tag("empty-caches"),
            progress=self.kind,
            build_args={"BUST": uuid.uuid4().hex},
        )
        if not emptied.ok or not mounts:
            raise RuntimeError(f"bench: emptying {mounts} failed:\n{emptied.output[-2000:]}")

    def proxy_link(self, profile: str) -> tuple[int, float]:
        """(bytes, seconds) of the wheels moved from the warm proxy to a container on the
        network the profile's builds run on, at the index address they are given: the
        link a fresh runner's install reaches the proxy through (issue 22's target is the
        floor plus this plus 0.3 s)."""
        plan, _ = self.raw_line(f"link-{profile}", profile)
        index = plan["build_env"]["PIP_INDEX_URL"]
        urls = [f"{index}{_project(name)}/{name}" for name in sorted(self.fixtures.files)]
        return engine.fetch(BASE_IMAGE, plan["network"] or "default", urls)

    # --- one timed build -------------------------------------------------------------------------

    def raw_build(self, context: Path, what: str, target: str | None = None) -> engine.BuildRun:
        """docker buildx build of a context, no orchestrator (the floor and direct)."""
        args = {"BASE_IMAGE": BASE_IMAGE}
        if context == self.fixtures.app_context:
            args |= {
                "PIP_INDEX_URL": self.upstream.host_url,
                "PIP_TRUSTED_HOST": self.upstream.ip,
            }
        return engine.build(
            context, tag=self.tag(what), progress=self.kind, build_args=args, target=target
        )

    def orchestrated(self, name: str, *args: str) -> engine.BuildRun:
        """``orchestrate build ARGS``. The profiles leave progress to buildx, which reads
        ``BUILDKIT_PROGRESS`` from the environment every orchestrate process gets (the same
        names each time: their names are facts a remembered plan is checked against)."""
        seconds, code, log = self.orchestrate.timed(f"{name}-cli", "build", *args)
        return engine.BuildRun(seconds, code == 0, log.read_text(errors="replace"))

    def raw_line(self, name: str, *args: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The plan ``orchestrate build ARGS --dry-run --json`` prints, and the environment
        its ``docker buildx build`` line needs to run as printed."""
        cli = self.orchestrate
        plan = json.loads(cli.check(name, "build", *args, "--dry-run", "--json"))
        return plan, raw_env(plan, dict(cli.env))

    def buildx_line(self, name: str, *args: str) -> engine.BuildRun:
        """The ``docker buildx build`` line that ``orchestrate build ARGS`` runs, run alone:
        the same build without orchestrate's start, decision and cache report, so that the
        difference is orchestrator's part."""
        plan, env = self.raw_line(f"{name}-plan", *args)
        return engine.run_line(plan["argv"], env)

    def measured(self, name: str, build: engine.BuildRun) -> Sample:
        """A sample of a build that just ran, with the upstream's requests since ``mark``."""
        requests = self.upstream.all_requests(settle=False)[self._mark :]
        files = [
            r
            for r in requests
            if r["method"] == "GET" and str(r["path"]).startswith("/files/") and r["status"] == 200
        ]
        log = self.orchestrate.log_path(name)
        log.write_text(build.output)
        steps = progress.parse(build.output, self.kind)
        sample = Sample(
            seconds=build.seconds,
            ok=build.ok,
            file_bytes=sum(int(r["bytes"]) for r in files),
            file_gets=len(files),
            other_bytes=sum(int(r["bytes"]) for r in requests if r not in files),
            other_requests=len(requests) - len(files),
            install_step=steps.install,
            pip_start=steps.pip_start,
            pip_fetch=steps.pip_fetch,
            pip_install=steps.pip_install,
            export_step=steps.export,
            log=str(log),
        )
        status = "ok" if sample.ok else f"FAILED ({log})"
        print(
            f"bench:   {name:<22} {build.seconds:7.2f} s  upstream "
            f"{sample.file_bytes / 1e6:6.1f} MB  {status}",
            file=sys.stderr,
        )
        return sample

    def mark(self) -> None:
        """Where the upstream's request log stands before the next build. No settling: the
        last request of the previous build ended seconds ago."""
        self._mark = len(self.upstream.all_requests(settle=False))
