"""User profiles in Redis: one hash of small fields per owner (prof:<owner>), searches in a list.

Fields (written by COMMIT's MERGE_PROFILES from `profile_deltas`): `u` the user id; `fs`, `ls`,
`tw` first seen, last seen and total weight (float64); `c:<type>`, `h:<hour>`, `wd:<weekday>`
counts (integer text); `d:<device>`, `l:<location>` (int32 count, int32 first-seen rank); `k:<category>`,
`t:<tag>` decayed scores (float64 value, float64 time of value); `#` the last rank given; `qt`
the latest search's time (float64), `qn` the events since it (integer text).
psearch:<owner> holds the last 10 searches. Nothing is read to be written: a batch's change
is merged in Redis, so concurrent writers never lose each other's updates."""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING

from pulserec.profiles.profile import UserProfile

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState

#: How many searches a profile keeps (`UserProfile.searches` is a deque of this length).
SEARCHES_KEPT = 10

#: Lua, run by COMMIT after its forgets (`h`: the plan header, `p`: the key prefix, `meta`): merges
#: each owner's delta in one HMGET and one HSET. Floats arrive as JSON text (exact: Python
#: writes the shortest round-trip repr, Lua reads it with strtod) and are stored as float64;
#: the decayed merge is `DecayedCounter.add`, term for term.
MERGE_PROFILES = """
local rate = h.rate
for _, d in ipairs(h.profiles) do
  local key = p .. 'prof:' .. d.o
  local fields = {'u', 'fs', 'ls', 'tw', '#', 'qn'}
  for i = 1, #d.n, 2 do fields[#fields + 1] = d.n[i] end
  for i = 1, #d.r, 2 do fields[#fields + 1] = d.r[i] end
  for i = 1, #d.k, 3 do fields[#fields + 1] = d.k[i] end
  local cur = {}
  for start = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, start, math.min(start + 999, #fields)))
    for i = 1, #part do cur[#cur + 1] = part[i] end
  end
  local out = {}
  local function put(field, value) out[#out + 1] = field; out[#out + 1] = value end
  local function float(blob, default) if blob then return (struct.unpack('<d', blob)) end return default end
  if not cur[1] then
    put('u', d.u)
    redis.call('HINCRBY', meta, 'profiles', 1)
  end
  put('fs', struct.pack('<d', math.min(float(cur[2], d.f), d.f)))
  put('ls', struct.pack('<d', math.max(float(cur[3], d.l), d.l)))
  put('tw', struct.pack('<d', float(cur[4], 0) + d.w))
  if d.qt then put('qt', struct.pack('<d', d.qt)); put('qn', string.format('%d', d.qn))
  else put('qn', string.format('%d', tonumber(cur[6] or '0') + d.qn)) end
  local rank, j = tonumber(cur[5] or '0'), 7
  for i = 1, #d.n, 2 do put(d.n[i], string.format('%d', tonumber(cur[j] or '0') + d.n[i + 1])); j = j + 1 end
  for i = 1, #d.r, 2 do
    local count, at = 0, 0
    if cur[j] then count, at = struct.unpack('<i4i4', cur[j]) else rank = rank + 1; at = rank end
    put(d.r[i], struct.pack('<i4i4', count + d.r[i + 1], at)); j = j + 1
  end
  put('#', rank)
  for i = 1, #d.k, 3 do
    local value, at = d.k[i + 1], d.k[i + 2]
    if cur[j] then
      local old, old_at = struct.unpack('<dd', cur[j])
      if at >= old_at then value = old * math.exp(-(at - old_at) * rate) + value
      else value = old + value * math.exp(-(old_at - at) * rate); at = old_at end
    end
    put(d.k[i], struct.pack('<dd', value, at)); j = j + 1
  end
  for start = 1, #out, 1000 do redis.call('HSET', key, unpack(out, start, math.min(start + 999, #out))) end
  if #d.s > 0 then
    local searches = p .. 'psearch:' .. d.o
    redis.call('RPUSH', searches, unpack(d.s))
    redis.call('LTRIM', searches, -""" + str(SEARCHES_KEPT) + """, -1)
  end
end
"""

#: Lua for COMMIT's forgets: delete an owner's profile (and uncount it).
FORGET_PROFILE = """
local function forget_profile(owner)
  if redis.call('DEL', p .. 'prof:' .. owner) == 1 then redis.call('HINCRBY', meta, 'profiles', -1) end
  redis.call('DEL', p .. 'psearch:' .. owner)
end
"""


class RedisProfiles:
    """The profiles read interface (`online.base.ProfileLookup`: get, in, len)."""

    def __init__(self, state: RedisState, interest_halflife: float) -> None:
        self.state = state
        self.interest_halflife = interest_halflife

    def search_mark(self, owner: int) -> tuple[str, float, int] | None:
        """`UserProfile.search_mark` from three fields, without building the profile (every
        recommend asks it): the request's snapshot holds them (READ), else one round trip."""
        view = self.state.current_view()
        if view is not None and view.owner == owner:
            return decode_mark(*view.mark) if view.mark else None
        pipe = self.state.client.pipeline(transaction=True)
        pipe.hmget(self.state.keys.profile(owner), "qt", "qn")
        pipe.lindex(self.state.keys.searches(owner), -1)
        (qt, qn), query = pipe.execute()
        return decode_mark(qt, qn, query)

    def get(self, owner: int) -> UserProfile | None:
        pipe = self.state.client.pipeline(transaction=True)
        pipe.hgetall(self.state.keys.profile(owner))
        pipe.lrange(self.state.keys.searches(owner), 0, -1)
        fields, searches = pipe.execute()
        return decode_profile(fields, searches, self.interest_halflife)

    def __contains__(self, owner: int) -> bool:
        return bool(self.state.client.exists(self.state.keys.profile(owner)))

    def __len__(self) -> int:
        return int(self.state.client.hget(self.state.keys.meta, "profiles") or 0)


def decode_mark(qt: bytes | None, qn: bytes | None, query: bytes | None) -> tuple[str, float, int] | None:
    """(latest query, its time, events since) from the fields `qt`, `qn` and the last search, as
    `UserProfile.search_mark` gives it from the decoded profile (None before any search)."""
    if not qt or not query:
        return None
    (ts,) = struct.unpack("<d", qt)
    return (query.decode(), ts, int(qn or b"0")) if math.isfinite(ts) else None


def decode_profile(fields: dict[bytes, bytes], searches: list[bytes], interest_halflife: float) -> UserProfile | None:
    """A `UserProfile` from its hash fields (None for an owner without a profile)."""
    if not fields:
        return None
    profile = UserProfile(fields[b"u"].decode(), interest_halflife)
    (profile.first_seen,), (profile.last_seen,) = struct.unpack("<d", fields[b"fs"]), struct.unpack("<d", fields[b"ls"])
    (profile.total_weight,) = struct.unpack("<d", fields[b"tw"])
    ranked: list[tuple[int, str, int]] = []
    categories: dict[str, tuple[float, float]] = {}
    tags: dict[str, tuple[float, float]] = {}
    for raw, value in fields.items():
        kind, _, name = raw.decode().partition(":")
        if kind == "c":
            profile.counts[name] = int(value)
        elif kind == "h":
            profile.hours[int(name)] = int(value)
        elif kind == "wd":
            profile.weekdays[int(name)] = int(value)
        elif kind in ("d", "l"):
            count, rank = struct.unpack("<ii", value)
            ranked.append((rank, raw.decode(), count))
        elif kind in ("k", "t"):
            (categories if kind == "k" else tags)[name] = struct.unpack("<dd", value)
    for _, field, count in sorted(ranked):  # first-seen order, so that most_common breaks ties alike
        kind, _, name = field.partition(":")
        (profile.devices if kind == "d" else profile.locations)[name] = count
    profile.categories.assign(categories)
    profile.tags.assign(tags)
    profile.searches.extend(s.decode() for s in searches)
    if b"qt" in fields:
        (profile.last_search_ts,) = struct.unpack("<d", fields[b"qt"])
    profile.since_search = int(fields.get(b"qn", b"0"))
    return profile
