"""A/B experiments and online feedback: stable assignment, impressions, CTR/conversion, z-tests."""
