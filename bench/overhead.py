"""The orchestrator's own cost: what `orchestrate build` adds to the build line it runs,
its start-up, and how long deciding on the fallback takes when the proxy is absent."""

from __future__ import annotations

import datetime
import socket
import time
from typing import Any

from bench import engine
from bench.model import Timings
from bench.modes import PROXY_PROFILE
from bench.session import Session, free_port
from devsupport.upstream_container import json_lines


def overhead(session: Session, runs: int) -> tuple[dict[str, Timings], dict[str, Any]]:
    """`orchestrate build P` against the `docker buildx build` line its --dry-run --json
    prints, both building the same fully cached image, alternated in one run.

    P is the proxy's profile, built just before through the warm proxy: its plan is
    remembered, so this is the path a user's repeated build takes. Returns the timings and
    what a ``-v`` run showed: the docker processes before the build, whether the plan was
    remembered.
    """
    cli = session.orchestrate
    plan, env = session.raw_line("plan", PROXY_PROFILE)
    found: dict[str, list[float]] = {key: [] for key in ("orch", "raw", "before", "version")}
    seen: dict[str, Any] = {"raw_command": plan["command"]}
    for i in range(runs):
        seconds, code, _ = cli.timed(f"overhead-orch-{i}", "build", PROXY_PROFILE)
        found["orch"].append(seconds if code == 0 else float("nan"))
        raw = engine.run_line(plan["argv"], env)
        found["raw"].append(raw.seconds if raw.ok else float("nan"))
        launched = time.time()
        _, _, log = cli.timed(f"overhead-v-{i}", "-v", "build", PROXY_PROFILE, log_format="json")
        started, seen["docker_calls"], seen["remembered"] = _build_start(log.read_text())
        if started is not None:
            found["before"].append(started - launched)
        seconds, _, _ = cli.timed(f"overhead-version-{i}", "--version")
        found["version"].append(seconds)
    return {
        "orchestrate build (cached)": Timings(
            "orchestrate build, all layers cached, remembered plan", found["orch"]
        ),
        "raw build (cached)": Timings(
            "its docker buildx build line, all layers cached", found["raw"]
        ),
        "orchestrate before the build": Timings(
            "orchestrate build -v: from launch until it starts docker buildx build",
            found["before"],
        ),
        "orchestrate --version": Timings("orchestrate --version (start-up)", found["version"]),
    }, seen


def _build_start(log: str) -> tuple[float | None, list[str], bool]:
    """When orchestrate started the build (epoch s), the docker calls before it, and
    whether it used the remembered plan."""
    calls: list[str] = []
    remembered = False
    for record in json_lines(log):
        remembered = remembered or record.get("event") == "plan remembered"
        if record.get("event") == "docker":
            calls.append(str(record.get("action")))
        if record.get("event") == "running":
            stamp = str(record.get("timestamp", "")).replace("Z", "+00:00")
            return datetime.datetime.fromisoformat(stamp).timestamp(), calls, remembered
    return None, calls, remembered


def decision(session: Session, runs: int) -> dict[str, Timings]:
    """Deciding on the fallback with the proxy absent (a closed port) against --no-proxy,
    end to end; and with a proxy that accepts connections and never answers."""
    cli = session.orchestrate
    closed = f"http://127.0.0.1:{free_port()}/index/"
    session.profile("absent", proxy={**session.proxy_settings("absent"), "url": closed})
    absent, none, hung = [], [], []
    for i in range(runs):
        seconds, code, log = cli.timed(f"decide-absent-{i}", "build", "absent", "--dry-run")
        if code != 0 or "mode:       cache-mount" not in log.read_text():
            raise RuntimeError(f"the absent proxy did not lead to the fallback: {log}")
        absent.append(seconds)
        seconds, _, _ = cli.timed(f"decide-none-{i}", "build", "absent", "--dry-run", "--no-proxy")
        none.append(seconds)
    with socket.socket() as listener:  # a hung proxy container: accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/index/"
        session.profile("hung", proxy={**session.proxy_settings("hung"), "url": url})
        for i in range(2):
            seconds, _, _ = cli.timed(f"decide-hung-{i}", "build", "hung", "--dry-run")
            hung.append(seconds)
    return {
        "decide (cli, absent)": Timings("orchestrate build --dry-run, proxy absent", absent),
        "decide (cli, --no-proxy)": Timings("orchestrate build --dry-run --no-proxy", none),
        "decide (cli, hung)": Timings("orchestrate build --dry-run, proxy never answers", hung),
    }
