"""Recommendation models, each in its own module behind the protocol in :mod:`.base`."""
