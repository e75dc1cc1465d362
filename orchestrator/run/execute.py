"""Carrying out `orchestrate run` and the side of `orchestrate env` that needs one: plan,
then do exactly that plan.

What a run makes, it removes: the private copies of secrets when the run ends, however it
ends; the container through ``--rm``, and on Ctrl-C or SIGTERM by its name, since the
`docker run` client stopping does not stop the container. The cache volume is the one
thing that stays, on purpose.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

from orchestrator.engine import client as engine
from orchestrator.engine.api import current as current_engine
from orchestrator.errors import BadInput, Conflict, ExitCode, HandledError
from orchestrator.log import get_logger
from orchestrator.plan.containers import (
    CACHE_LABEL,
    CACHE_TARGET,
    RunPlan,
    SecretCopy,
    Wiring,
)
from orchestrator.proxy.locking import creation_lock
from orchestrator.proxy.spec import OWNER, OWNER_LABEL

log = get_logger(__name__)
STOP_SECONDS = 5  # a stopped container's command gets this long before it is killed
GONE_SECONDS = 10.0  # how long a removed container may take to disappear


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (the container is stopped) but reported as itself."""


def run(plan: RunPlan) -> int:
    """Run the container as planned; its command's exit code is the result."""
    prepare(plan.wiring)
    with _sigterm_as_interrupt(), _secret_files(plan):
        try:
            return current_engine().stream(
                plan.argv,
                env=plan.process_env,
                interactive=plan.attached,
                on_interrupt=lambda: stop(plan.name, plan.remove),
            )
        except Terminated:
            raise HandledError(
                f"terminated (SIGTERM); container {plan.name} was stopped",
                exit_code=ExitCode.TERMINATED,
            ) from None


def prepare(wiring: Wiring) -> None:
    """What must exist before a container with this wiring starts: the cache volume."""
    if wiring.cache is not None:
        ensure_cache_volume(wiring)


# --- the fallback's cache volume -------------------------------------------------------------


def ensure_cache_volume(wiring: Wiring) -> None:
    """Create the volume, owned by the run's uid:gid, unless it exists; ours or refused.

    Serialised per volume for every user of the engine, so a second run never sees it
    created but not yet given to its owner; a failed chown removes the volume again.
    """
    cache = wiring.cache
    assert cache is not None
    docker = engine.client()
    with creation_lock(f"volume {cache.name}"):
        if engine.call("look up the cache volume", docker.volume.exists, cache.name):
            volume = engine.call("inspect the cache volume", docker.volume.inspect, cache.name)
            if (volume.labels or {}).get(OWNER_LABEL) != OWNER:
                raise Conflict(
                    f"a volume named '{cache.name}' exists but was not created by "
                    "orchestrator; it is left alone: set cache_namespace in the profile"
                )
            return
        if cache.image is None:
            raise BadInput(
                f"the cache volume {cache.name} does not exist yet and the profile has no "
                "tags: give --image, whose root user makes it the run user's"
            )
        labels = {OWNER_LABEL: OWNER, CACHE_LABEL: f"{cache.uid}:{cache.gid}"}
        volume = engine.call(
            "create the cache volume", docker.volume.create, cache.name, labels=labels
        )
        try:
            engine.call(
                "give the cache volume to the run's user",
                docker.container.run,
                cache.image,
                [f"{cache.uid}:{cache.gid}", CACHE_TARGET],
                entrypoint="chown",
                user="0:0",
                remove=True,
                networks=["none"],
                volumes=[(volume.name, CACHE_TARGET, "rw")],
                labels={OWNER_LABEL: OWNER},
                name=f"{cache.name}-chown-{os.getpid()}",
            )
        except BaseException:
            with suppress(HandledError, *engine.absent_errors()):
                engine.call("remove the cache volume", docker.volume.remove, volume.name)
            raise
    log.info("cache volume created", volume=cache.name, owner=f"{cache.uid}:{cache.gid}")


# --- secrets ----------------------------------------------------------------------------------


@contextmanager
def _secret_files(plan: RunPlan) -> Iterator[None]:
    """Each secret as a private file for the run's length; the directory goes with it."""
    if plan.secret_dir is None or not plan.copies:
        yield
        return
    plan.secret_dir.mkdir(mode=0o700)  # exclusive: a fresh random name, never reused
    try:
        for copy in plan.copies:
            _write_secret(copy)
        yield
    finally:
        shutil.rmtree(plan.secret_dir, ignore_errors=True)


def _write_secret(copy: SecretCopy) -> None:
    secret = copy.secret
    if secret.file is not None:
        try:
            value = Path(secret.file).read_bytes()
        except OSError as exc:
            raise BadInput(
                f"{secret.file}: cannot read secret '{secret.id}': {exc.strerror}"
            ) from None
    else:
        assert secret.variable is not None
        found = os.environb.get(secret.variable.encode())
        if found is None:
            raise BadInput(f"environment variable {secret.variable} is not set")
        value = found
    descriptor = os.open(copy.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, value)
        if copy.owner is not None:
            os.fchown(descriptor, *copy.owner)
        os.fchmod(descriptor, copy.mode)
    finally:
        os.close(descriptor)


# --- stopping -------------------------------------------------------------------------------


def stop(name: str, removed: bool) -> None:
    """Stop the container by its name, and with ``--rm`` wait until it is gone.

    A second Ctrl-C while this runs is ignored: cutting it short would leave the
    container running, which is what this is for.
    """
    with _ignoring_sigint():
        docker = engine.client()
        try:
            engine.call("stop the container", docker.container.stop, name, time=STOP_SECONDS)
        except engine.absent_errors():
            return
        except HandledError as exc:
            log.warning("container not stopped", container=name, reason=exc.message)
            return
        log.info("container stopped", container=name)
        if removed:
            _wait_gone(name)


def _wait_gone(name: str) -> None:
    """``--rm`` removes it in the engine, a moment after it stops."""
    docker = engine.client()
    deadline = time.monotonic() + GONE_SECONDS
    while time.monotonic() < deadline:
        if not engine.call("look up the container", docker.container.exists, name):
            return
        time.sleep(0.1)
    with suppress(HandledError, *engine.absent_errors()):
        engine.call("remove the container", docker.container.remove, name, force=True)


@contextmanager
def _ignoring_sigint() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A CI cancelling the job sends SIGTERM: stop the container as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
