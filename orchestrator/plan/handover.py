"""What a build is handed besides the index: the CA bundle, the build user, the ssh-agent,
the profile's secrets, and where the image goes. Secrets, sockets and bundles reach the
build as BuildKit secrets or ssh mounts, never as build args or layers."""

from __future__ import annotations

from orchestrator.plan.decisions import (
    ca_bundle,
    ca_variables,
    check_secrets,
    choose_user,
    ssh_socket,
)
from orchestrator.plan.draft import Draft
from orchestrator.plan.model import CA_SECRET, PROFILE_LABEL

USER_ARGS = ("USER_NAME", "USER_ID", "GROUP_ID")


def plan_ca(draft: Draft) -> None:
    how = "mounted into RUN steps as a secret, never a layer"
    path = ca_bundle(draft, draft.profile, draft.facts, how)
    if path is None:
        return
    draft.ca_bundle = path
    draft.secret(f"id={CA_SECRET},src={path}")
    draft.env.update(ca_variables(f"/run/secrets/{CA_SECRET}"))


def plan_user(draft: Draft) -> None:
    chosen = choose_user(draft.profile, draft.facts)
    if chosen is None:
        draft.decide("build user", "off", "the profile sets user: off")
        return
    user, reason = chosen
    draft.build_user = user
    values = dict(zip(USER_ARGS, (user.name, str(user.uid), str(user.gid)), strict=True))
    declared = [name for name in USER_ARGS if draft.parsed.declares(name)]
    draft.build_args.update({name: values[name] for name in declared})
    passed = ", ".join(f"{n}={values[n]}" for n in declared) or "none declared by the Dockerfile"
    draft.decide("build user", passed, reason)


def plan_ssh(draft: Draft) -> None:
    sock = ssh_socket(draft.resolved, draft.facts)
    if sock is None:
        return
    draft.ssh.append(f"default={sock}")
    draft.args += ["--ssh", f"default={sock}"]
    draft.decide(
        "ssh", f"default={sock}", "the profile forwards the ssh-agent; keys stay on the host"
    )


def plan_secrets(draft: Draft) -> None:
    check_secrets(draft.resolved, draft.facts)
    for key, secret in draft.profile.secrets.items():
        if secret.env is not None:
            draft.secret(f"id={key},env={secret.env}")
        else:
            draft.secret(f"id={key},src={secret.file}")
    if draft.profile.secrets:
        draft.decide("secrets", ", ".join(draft.profile.secrets), "passed as BuildKit secrets")


def plan_output(draft: Draft) -> None:
    profile = draft.profile
    labels = {**profile.labels, PROFILE_LABEL: draft.resolved.name}
    draft.labels = labels
    for key, value in labels.items():
        draft.args += ["--label", f"{key}={value}"]
    for tag in profile.tags:
        draft.args += ["--tag", tag]
    if profile.platforms:
        draft.args += ["--platform", ",".join(profile.platforms)]
    if len(profile.platforms) > 1:
        draft.decide(
            "output",
            "build cache only",
            "a multi-platform image cannot be loaded into the engine's image store",
        )
        return
    draft.args.append("--load")
    draft.decide(
        "output", "load into the engine", "so `docker run` and `docker image inspect` see it"
    )
