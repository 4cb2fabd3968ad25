"""Behaviour capture: validation of API input and bulk import of events, items and users."""
