"""Facts about the machine that planning needs, gathered in one place."""

from __future__ import annotations

import os
import pwd

from orchestrator.plan import HostFacts


def gather_facts() -> HostFacts:
    uid, gid = os.getuid(), os.getgid()
    try:
        user_name = pwd.getpwuid(uid).pw_name
    except KeyError:
        user_name = os.environ.get("USER", f"user{uid}")
    return HostFacts(uid=uid, gid=gid, user_name=user_name)
