"""User profiles: decayed interests, activity statistics, context habits and segments."""

from pulserec.profiles.profile import DecayedCounter, Profiles, UserProfile

__all__ = ["DecayedCounter", "Profiles", "UserProfile"]
