"""pulserec: a real-time recommendation engine.

Events go in over HTTP or a bulk importer, every accepted event updates the online state
(popularity, item co-occurrence, user profiles, sessions) before it is acknowledged, and
recommendations come out in milliseconds.
"""

__version__ = "0.1.0"
