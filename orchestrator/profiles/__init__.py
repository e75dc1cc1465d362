"""Build profiles: what a profile may say (``model``) and how files become one (``store``)."""

from orchestrator.paths import PROFILES_DIR_ENV
from orchestrator.profiles.model import (
    DEFAULT_CA_BUNDLE,
    BuildUser,
    Profile,
    ProxySettings,
    Secret,
)
from orchestrator.profiles.store import (
    ProfileStore,
    ResolvedProfile,
    json_schema,
)
from orchestrator.profiles.values import PROFILE_NAME

__all__ = [
    "DEFAULT_CA_BUNDLE",
    "PROFILES_DIR_ENV",
    "PROFILE_NAME",
    "BuildUser",
    "Profile",
    "ProfileStore",
    "ProxySettings",
    "ResolvedProfile",
    "Secret",
    "json_schema",
]
