"""The profile room: merge policies, the unified profile table, profile lookup."""

from workbench.profile.profiles import Profile, ProfileBuildStats, Profiles

__all__ = ["Profile", "ProfileBuildStats", "Profiles"]
