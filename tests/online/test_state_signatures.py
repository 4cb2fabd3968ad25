"""Both online states implement online/base.py with the same signatures: every method a protocol
declares exists on the in-memory and the Redis class with the protocol's parameters (names, kinds,
defaults), so a caller typed against the protocol works with either (the behaviour is
tests/online/test_state_contract.py's)."""

from __future__ import annotations

import inspect
import re

import pytest

from pulserec.ids import IdIndex
from pulserec.online import base
from pulserec.online.catalog import Catalog
from pulserec.online.cooccurrence import CoOccurrence
from pulserec.online.history import Histories
from pulserec.online.popularity import Popularity
from pulserec.online.redis.catalog import RedisCatalog
from pulserec.online.redis.cooccurrence import RedisCoOccurrence
from pulserec.online.redis.counters import RedisPopularity
from pulserec.online.redis.histories import RedisHistories
from pulserec.online.redis.ids import RedisIdIndex
from pulserec.online.redis.profiles import RedisProfiles
from pulserec.online.redis.state import RedisState
from pulserec.online.state import OnlineState
from pulserec.profiles.table import ProfileTable

IMPLEMENTED = [
    (base.State, (OnlineState, RedisState)),
    (base.OwnerIndex, (IdIndex, RedisIdIndex)),
    (base.ItemCatalog, (Catalog, RedisCatalog)),
    (base.PopularityCounts, (Popularity, RedisPopularity)),
    (base.CoOccurrenceRows, (CoOccurrence, RedisCoOccurrence)),
    (base.HistoryLookup, (Histories, RedisHistories)),
    (base.ProfileLookup, (ProfileTable, RedisProfiles)),
]


def declared(protocol: type) -> dict[str, object]:
    """The members `protocol` itself declares (methods and properties), by name."""
    return {name: value for name, value in vars(protocol).items()
            if (callable(value) or isinstance(value, property)) and not name.startswith("_abc")
            and name not in ("__init__", "__subclasshook__", "_is_protocol", "__init_subclass__")
            and not (name.startswith("__") and name not in ("__len__", "__contains__"))}


def shape(function: object) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter after `self`."""
    return [(p.name, p.kind, p.default) for p in list(inspect.signature(function).parameters.values())[1:]]


@pytest.mark.parametrize("protocol, classes", IMPLEMENTED, ids=[p.__name__ for p, _ in IMPLEMENTED])
def test_each_backend_has_the_protocols_members_with_its_signatures(protocol, classes):
    for name, member in declared(protocol).items():
        for cls in classes:
            if isinstance(member, property):  # a read-only property: a property or an attribute set in __init__
                assert hasattr(cls, name) or re.search(rf"self\.{name}\b[^=\n]*=", inspect.getsource(cls)), \
                    f"{cls.__name__} lacks {protocol.__name__}.{name}"
                continue
            assert hasattr(cls, name), f"{cls.__name__} lacks {protocol.__name__}.{name}"
            assert shape(getattr(cls, name)) == shape(member), f"{cls.__name__}.{name}{inspect.signature(getattr(cls, name))}"


def test_the_check_finds_a_drifted_signature():
    class Drifted(OnlineState):
        def apply(self, event, seq=0, strict=True):  # one parameter more than State.apply
            return True

    assert shape(Drifted.apply) != shape(base.State.apply)
    assert shape(OnlineState.apply) == shape(RedisState.apply) == shape(base.State.apply)
