"""What a build is handed besides the index: the CA bundle, the build user, the ssh-agent,
the profile's secrets, and where the image goes. Secrets, sockets and bundles reach the
build as BuildKit secrets or ssh mounts, never as build args or layers."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.errors import BadInput
from orchestrator.plan.draft import Draft
from orchestrator.plan.model import CA_SECRET, PROFILE_LABEL
from orchestrator.profiles import BuildUser

USER_ARGS = ("USER_NAME", "USER_ID", "GROUP_ID")
FALLBACK_UID = 1000


def plan_ca(draft: Draft) -> None:
    path = draft.profile.ca_bundle_path(draft.facts.host_ca_bundle)
    if path is None:
        draft.decide("CA bundle", "none", "off, or no host bundle found")
        return
    draft.ca_bundle = path
    draft.secret(f"id={CA_SECRET},src={path}")
    target = f"/run/secrets/{CA_SECRET}"
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        draft.env[name] = target
    draft.decide("CA bundle", str(path), "mounted into RUN steps as a secret, never a layer")


def plan_user(draft: Draft) -> None:
    setting = draft.profile.user
    if setting == "off":
        draft.decide("build user", "off", "the profile sets user: off")
        return
    if setting == "host":
        facts = draft.facts
        if facts.uid == 0:
            user = BuildUser(name="builder", uid=FALLBACK_UID, gid=FALLBACK_UID)
            reason = "the host user is root; a root build user would defeat a non-root image"
        else:
            user = BuildUser(name=facts.user_name, uid=facts.uid, gid=facts.gid)
            reason = "the invoking user, so files in mounted volumes keep their owner"
    else:
        user, reason = setting, "given by the profile"
    user = _with_profile_overrides(user, draft.profile.build_args)
    draft.build_user = user
    values = dict(zip(USER_ARGS, (user.name, str(user.uid), str(user.gid)), strict=True))
    declared = [name for name in USER_ARGS if draft.parsed.declares(name)]
    draft.build_args.update({name: values[name] for name in declared})
    passed = ", ".join(f"{n}={values[n]}" for n in declared) or "none declared by the Dockerfile"
    draft.decide("build user", passed, reason)


def _with_profile_overrides(user: BuildUser, build_args: Mapping[str, str]) -> BuildUser:
    """The profile's own USER_* build args win, so mounts must use their values too."""
    uid, gid = build_args.get("USER_ID", ""), build_args.get("GROUP_ID", "")
    return BuildUser(
        name=build_args.get("USER_NAME", user.name),
        uid=int(uid) if uid.isdigit() else user.uid,
        gid=int(gid) if gid.isdigit() else user.gid,
    )


def plan_ssh(draft: Draft) -> None:
    if not draft.profile.ssh:
        return
    sock = draft.facts.ssh_auth_sock
    if not sock:
        raise BadInput(
            f"{draft.resolved.sources[0]}: field 'ssh' is true but no ssh-agent "
            "socket was found: start one (eval $(ssh-agent); ssh-add) so "
            "SSH_AUTH_SOCK is set"
        )
    draft.ssh.append(f"default={sock}")
    draft.args += ["--ssh", f"default={sock}"]
    draft.decide(
        "ssh", f"default={sock}", "the profile forwards the ssh-agent; keys stay on the host"
    )


def plan_secrets(draft: Draft) -> None:
    for key, secret in draft.profile.secrets.items():
        if secret.env is not None:
            if secret.env not in draft.facts.env_names:
                raise BadInput(
                    f"{draft.resolved.sources[0]}: field 'secrets.{key}.env': "
                    f"environment variable {secret.env} is not set"
                )
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
