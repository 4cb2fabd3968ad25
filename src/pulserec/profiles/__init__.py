"""User profiles: decayed interests, activity statistics, context habits and segments."""

from pulserec.profiles.profile import DecayedCounter, UserProfile

__all__ = ["DecayedCounter", "UserProfile"]
