"""The Lua scripts that make each state change atomic (see `connection.Keys` for the layout).

Lua only checks, interns and adds: every formula (pair weights, forward decay, profiles) is
computed in Python by the same functions the in-memory state uses, and arrives here as binary
deltas. Floats travel as binary or as exact text, never as Lua numbers, which `tostring` would
round to 14 digits. ARGV[1] is always the key prefix.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script

from pulserec.online.redis.profiles import FORGET_PROFILE, MERGE_PROFILES

#: intern(kind, id, record, created): index of `id` in owners/items, appending it if new.
#: New items also get their record, creation time and a catalogue-log entry.
_INTERN = """
local p = ARGV[1]
local function intern(kind, id, record, created)
  local idx = redis.call('HGET', p .. kind, id)
  if idx then return tonumber(idx) end
  idx = redis.call('RPUSH', p .. kind .. ':ids', id) - 1
  redis.call('HSET', p .. kind, id, idx)
  if kind == 'items' then
    redis.call('HSET', p .. 'items:rec', idx, record)
    if created ~= '' then redis.call('HSET', p .. 'items:created', idx, created) end
    redis.call('RPUSH', p .. 'catalog:log', idx)
  end
  return idx
end
"""

#: ARGV: prefix, kind, n, ids[n], then for items records[n], created[n]. Returns indices.
INTERN_MANY = _INTERN + """
local kind, n = ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 1, n do
  if kind == 'items' then
    out[i] = intern(kind, ARGV[3 + i], ARGV[3 + n + i], ARGV[3 + 2 * n + i])
  else
    out[i] = intern(kind, ARGV[3 + i])
  end
end
return out
"""

#: ARGV: prefix, n, ids[n], records[n], created[n]. Writes catalogue records (upsert).
UPSERT_ITEMS = _INTERN + """
local n = tonumber(ARGV[2])
for i = 1, n do
  local record, created = ARGV[2 + n + i], ARGV[2 + 2 * n + i]
  local idx = intern('items', ARGV[2 + i], record, created)
  redis.call('HSET', p .. 'items:rec', idx, record)
  if created ~= '' then redis.call('HSET', p .. 'items:created', idx, created) end
  redis.call('RPUSH', p .. 'catalog:log', idx)
end
return n
"""

#: First round trip of one event. ARGV: prefix, event_id, owner key, item id ('' if none),
#: new-item record, created, history bytes to return. Returns {1} for an applied event id,
#: else {0, owner, item (-1), owner version, history tail, item record, landmark}.
PREPARE = _INTERN + """
if redis.call('SISMEMBER', p .. 'applied', ARGV[2]) == 1 then return {1} end
local owner = intern('owners', ARGV[3])
local item, record = -1, false
if ARGV[4] ~= '' then
  item = intern('items', ARGV[4], ARGV[5], ARGV[6])
  record = redis.call('HGET', p .. 'items:rec', item)
end
local version = tonumber(redis.call('HGET', p .. 'ver', owner) or '0')
local tail = redis.call('GETRANGE', p .. 'hist:' .. owner, -tonumber(ARGV[7]), -1)
return {0, owner, item, version, tail, record, redis.call('HGET', p .. 'meta', 'landmark')}
"""

#: Apply one planned change atomically (see `plan.CommitPlan` for the header fields).
#: Returns {'ok', items whose rows need compaction}, {'dup'}, {'conflict'}, {'stale'} when an owner
#: id was unmapped since this process's cached indices were read (`meta.drops`, see `ids.py`), or
#: {'lost'} when the namespace is not the state this process attached to (`meta.state_id`).
COMMIT = """
local p = ARGV[1]

local meta = p .. 'meta'
""" + FORGET_PROFILE + """
local h = cjson.decode(ARGV[2])
local pos = 3
local function blob() local b = ARGV[pos]; pos = pos + 1; return b end
local applied, versions = p .. 'applied', p .. 'ver'

-- A state lost (Redis restarted empty) or reloaded since this process attached: write nothing.
if (redis.call('HGET', meta, 'state_id') or '') ~= h.state_id then return {'lost'} end
-- Owner indices the plan took from this process's cache are valid while no id was unmapped since.
if tonumber(redis.call('HGET', meta, 'drops') or '0') ~= h.drops then return {'stale'} end

-- Event ids are ARGV[fresh .. fresh + h.fresh - 1] and then h.done more; sets are asked and
-- written in chunks of them (one call per id cost ~1 us of Redis CPU an event).
local fresh, done = pos, pos + h.fresh
pos = done + h.done
local function chunks(from, n, fn)  -- fn(first, last) over ARGV[from .. from + n - 1]; stops at a non-nil answer
  for start = from, from + n - 1, 1000 do
    local answer = fn(start, math.min(start + 999, from + n - 1))
    if answer ~= nil then return answer end
  end
end
local function any_is(wanted)
  return function(first, last)
    for _, member in ipairs(redis.call('SMISMEMBER', applied, unpack(ARGV, first, last))) do
      if member == wanted then return true end
    end
  end
end
if chunks(fresh, h.fresh, any_is(1)) then return {'dup'} end
if chunks(done, h.done, any_is(0)) then return {'conflict'} end
for _, check in ipairs(h.versions) do
  if tonumber(redis.call('HGET', versions, check[1]) or '0') ~= check[2] then return {'conflict'} end
end
if h.landmark and (redis.call('HGET', meta, 'landmark') or '') ~= h.landmark[1] then return {'conflict'} end

chunks(fresh, h.fresh, function(first, last) redis.call('SADD', applied, unpack(ARGV, first, last)) end)
for _, check in ipairs(h.versions) do redis.call('HINCRBY', versions, check[1], 1) end

local function scale_vector(key, factor)
  local data = redis.call('GET', key)
  if not data then return end
  local parts = {}
  for i = 0, #data / 8 - 1 do parts[i + 1] = struct.pack('<d', struct.unpack('<d', data, i * 8 + 1) * factor) end
  redis.call('SET', key, table.concat(parts))
end
-- vec[idx] = combined(vec[idx], delta) for each (int32 idx, float64 delta) entry, in order: mode 0
-- adds, 1 adds then takes max(., 0) (clamping), 2 takes the larger (last-seen times). Few entries
-- are written in place (two calls each); many (an updater's batch touches ~15% of MovieLens'
-- items) by rewriting the vector once: one GET, one SET, no call per entry (measured: Redis CPU
-- per event 42 -> 26 us when the vectors are not written at all).
local function combined(mode, old, delta)  -- past a vector's end, old is 0 (the vectors are zero-padded)
  if mode == 2 then return math.max(old, delta) end
  local value = old + delta
  if mode == 1 and value < 0 then return 0 end
  return value
end
local function add_to_vector(key, data, mode)
  local n = #data / 12
  if n * h.vector_rewrite < redis.call('STRLEN', key) / 8 then
    for i = 0, n - 1 do
      local idx, delta = struct.unpack('<i4d', data, i * 12 + 1)
      local cur = redis.call('GETRANGE', key, idx * 8, idx * 8 + 7)
      local old = 0
      if #cur == 8 then old = struct.unpack('<d', cur) end
      redis.call('SETRANGE', key, idx * 8, struct.pack('<d', combined(mode, old, delta)))
    end
    return
  end
  local vec = redis.call('GET', key) or ''
  local new, order = {}, {}
  for i = 0, n - 1 do
    local idx, delta = struct.unpack('<i4d', data, i * 12 + 1)
    local value = new[idx]
    if value == nil then
      order[#order + 1] = idx
      value = 0
      if idx * 8 + 8 <= #vec then value = struct.unpack('<d', vec, idx * 8 + 1) end
    end
    new[idx] = combined(mode, value, delta)
  end
  table.sort(order)
  local parts, pos = {}, 0
  local function copy(from, to)  -- bytes [from, to) of the old vector, zeros past its end
    if to <= from then return end
    if from < #vec then parts[#parts + 1] = string.sub(vec, from + 1, math.min(to, #vec)) end
    if to > #vec then parts[#parts + 1] = string.rep('\0', to - math.max(from, #vec)) end
  end
  for _, idx in ipairs(order) do
    copy(pos, idx * 8)
    parts[#parts + 1] = struct.pack('<d', new[idx])
    pos = idx * 8 + 8
  end
  copy(pos, #vec)
  redis.call('SET', key, table.concat(parts))
end

if #h.vectors > 0 or (h.landmark and h.landmark[1] ~= h.landmark[2]) then
  redis.call('HINCRBY', meta, 'vec_ver', 1)  -- readers' cached trending/degree vectors are stale
end
if h.landmark and h.landmark[1] ~= h.landmark[2] then
  redis.call('HSET', meta, 'landmark', h.landmark[2])
  if h.landmark[1] ~= '' then scale_vector(p .. 'vec:trending', tonumber(h.landmark[3])) end
end
for _, spec in ipairs(h.vectors) do add_to_vector(p .. 'vec:' .. spec[1], blob(), spec[2]) end

local compact, entries = {}, 0
local rows_blob, at = (#h.rows > 0 and blob() or ''), 1  -- every row's entries in one string, row_n each
for i, item in ipairs(h.rows) do
  local size = h.row_n[i] * 12
  local data = string.sub(rows_blob, at, at + size - 1)
  at = at + size
  local length = redis.call('APPEND', p .. 'cooc:' .. item, data)
  entries = entries + h.row_n[i]
  if length > h.compact_bytes then  -- a shorter row is never compacted: no need to read its clean length
    local clean = tonumber(redis.call('HGET', p .. 'cooc:clen', item) or '0')
    if length - clean > math.max(clean, h.compact_bytes) then table.insert(compact, item) end
  end
end
if entries ~= 0 then redis.call('HINCRBY', meta, 'cooc_entries', entries) end

-- Owners per item (vec:users; item-kNN's minimum support counts people, not events): -1 for
-- each item of a seen set deleted, +1 for each item a seen set gains. Kept here, where seen
-- sets change, so deletions and merges keep it exact (Histories.owner_counts in memory).
local owner_delta = {}
local function count_owner(item, delta) owner_delta[item] = (owner_delta[item] or 0) + delta end
local function seen_set(data)
  local set = {}
  for i = 0, #data / 4 - 1 do set[struct.unpack('<i4', data, i * 4 + 1)] = true end
  return set
end
local function holds(data, packed)  -- an aligned occurrence of the int32 in the seen string
  local from = 1
  while true do
    local at = string.find(data, packed, from, true)
    if not at then return false end
    if (at - 1) % 4 == 0 then return true end
    from = at + 1
  end
end
local function append_seen(key, data)
  local old = redis.call('GET', key) or ''
  local known = (#data > 64 and #old > 0) and seen_set(old) or nil  -- many items: one pass over old
  local added = {}
  for i = 0, #data / 4 - 1 do
    local packed = string.sub(data, i * 4 + 1, i * 4 + 4)
    local item = struct.unpack('<i4', packed)
    if not added[item] then
      added[item] = true
      local had = false
      if known then had = known[item] or false elseif #old > 0 then had = holds(old, packed) end
      if not had then count_owner(item, 1) end
    end
  end
  redis.call('APPEND', key, data)
end

-- Forgetting comes first, so that a change can also rebuild what it forgot (a session merge).
for _, owner in ipairs(h.forget) do
  local seen = redis.call('GET', p .. 'seen:' .. owner)
  if seen then for item in pairs(seen_set(seen)) do count_owner(item, -1) end end
  redis.call('DEL', p .. 'hist:' .. owner, p .. 'seen:' .. owner)
  forget_profile(owner)
end
for _, owner in ipairs(h.history) do
  local key = p .. 'hist:' .. owner
  local length = redis.call('APPEND', key, blob())
  if length > h.history_bytes then
    redis.call('SET', key, redis.call('GETRANGE', key, length - h.history_bytes, -1))
  end
end
-- Deleted (or merged) owners' ids leave the owner map; the slot keeps a tombstone (per-owner
-- keys are by index). Every process sees `drops` move and drops its cached indices.
for _, key in ipairs(h.drop) do
  local idx = redis.call('HGET', p .. 'owners', key)
  if idx then
    redis.call('HDEL', p .. 'owners', key)
    redis.call('LSET', p .. 'owners:ids', tonumber(idx), h.tombstone .. idx)
    redis.call('HINCRBY', meta, 'drops', 1)
  end
end
for _, owner in ipairs(h.seen) do append_seen(p .. 'seen:' .. owner, blob()) end
local counted = {}
for item, delta in pairs(owner_delta) do
  if delta ~= 0 then counted[#counted + 1] = struct.pack('<i4d', item, delta) end
end
if #counted > 0 then
  add_to_vector(p .. 'vec:users', table.concat(counted), 1)
  redis.call('HINCRBY', meta, 'vec_ver', 1)
end
""" + MERGE_PROFILES + """

if h.applied ~= 0 then redis.call('HINCRBY', meta, 'applied', h.applied) end
if h.last_seq > tonumber(redis.call('HGET', meta, 'last_seq') or '0') then
  redis.call('HSET', meta, 'last_seq', h.last_seq)
end
if h.now ~= '' then
  local now = redis.call('HGET', meta, 'now')
  if not now or tonumber(h.now) > tonumber(now) then redis.call('HSET', meta, 'now', h.now) end
end
return {'ok', compact}
"""

#: Replace the first `old length` bytes of each row by its compacted form, keeping whatever was
#: appended since it was read; a row compacted by another process since (its generation moved)
#: is left alone, and so is every row when the namespace is no longer the state the rows were
#: read from (`meta.state_id`: reloaded or lost since; a compaction may run on an updater's
#: background thread, after its commit). ARGV: prefix, state id, then little-endian int32
#: strings of the items, the generations read, the old lengths and the compacted entries per
#: row, and one string of every row's compacted (int32, float64) entries in that order.
#: Returns 1 (compacted) or 0 per row.
COMPACT_ROWS = """
local p, items, gens, lengths, counts, data = ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local out, at, entries = {}, 1, 0
if (redis.call('HGET', p .. 'meta', 'state_id') or '') ~= ARGV[2] then
  for i = 1, #items / 4 do out[i] = 0 end
  return out
end
for i = 1, #items / 4 do
  local item, gen = struct.unpack('<i4', items, i * 4 - 3), struct.unpack('<i4', gens, i * 4 - 3)
  local old, size = struct.unpack('<i4', lengths, i * 4 - 3), struct.unpack('<i4', counts, i * 4 - 3) * 12
  local compacted = string.sub(data, at, at + size - 1)
  at = at + size
  out[i] = 0
  if tonumber(redis.call('HGET', p .. 'cooc:gen', item) or '0') == gen then
    local key = p .. 'cooc:' .. item
    redis.call('SET', key, compacted .. redis.call('GETRANGE', key, old, -1))
    redis.call('HSET', p .. 'cooc:clen', item, size)
    redis.call('HINCRBY', p .. 'cooc:gen', item, 1)
    entries = entries + (size - old) / 12
    out[i] = 1
  end
end
if entries ~= 0 then redis.call('HINCRBY', p .. 'meta', 'cooc_entries', entries) end
return out
"""

#: The co-occurrence rows a read needs, as far as they changed since this process read them:
#: items, generations held and bytes held are binary strings of little-endian int32 (a read
#: names ~150 rows: one argument each cost ~8 us of the client's packing per row). Returns a
#: flat list of (item, generation, 1 for a whole row / 0 for a tail, bytes) for the rows that
#: changed only. Shared by READ (the rows this process expects the owner's query to read) and ROWS.
_CHANGED_ROWS = """
local function changed_rows(p, items, held_gens, held_bytes)
  local n = #items / 4
  local ids = {}
  for i = 1, n do ids[i] = struct.unpack('<i4', items, i * 4 - 3) end
  local gens = {}
  for start = 1, n, 1000 do  -- unpack() of a long list would overflow Lua's stack
    local part = redis.call('HMGET', p .. 'cooc:gen', unpack(ids, start, math.min(start + 999, n)))
    for i = 1, #part do gens[#gens + 1] = part[i] end
  end
  local out = {}
  for i = 1, n do
    local item, gen = ids[i], tonumber(gens[i] or '0')
    local held = struct.unpack('<i4', held_bytes, i * 4 - 3)
    local key = p .. 'cooc:' .. item
    if gen ~= struct.unpack('<i4', held_gens, i * 4 - 3) then
      out[#out + 1] = item; out[#out + 1] = gen; out[#out + 1] = 1; out[#out + 1] = redis.call('GET', key) or ''
    elseif redis.call('STRLEN', key) > held then
      out[#out + 1] = item; out[#out + 1] = gen; out[#out + 1] = 0; out[#out + 1] = redis.call('GETRANGE', key, held, -1)
    end
  end
  return out
end
"""

#: The small part of a request's snapshot (large strings are cheaper to GET outside Lua).
#: ARGV: prefix, owner key ('' for none), local catalogue version, local item count, the vector
#: version held ('-': send no vectors; see `read_cache`), then the rows expected (items,
#: generations and bytes held, as `_CHANGED_ROWS` takes them; empty strings for none).
#: Returns {owner (-1), history, seen, new item ids, changed items, their records, their
#: creation times, catalogue version, now, landmark, applied, cooc entries, epoch, state id, ready,
#: vector version, trending and degree (nil unless the version differs from the one held), owner
#: ids unmapped so far (`drops`), the owner's search mark (profile fields qt, qn and the latest
#: query: what every recommend asks, see `profiles.search_mark`), the expected rows that changed}:
#: a request whose owner's recent rows this process holds needs no ROWS call.
READ = _CHANGED_ROWS + """
local p = ARGV[1]
local owner, hist, seen, mark = -1, '', '', {}
if ARGV[2] ~= '' then
  local idx = redis.call('HGET', p .. 'owners', ARGV[2])
  if idx then
    owner = tonumber(idx)
    hist = redis.call('GET', p .. 'hist:' .. idx) or ''
    seen = redis.call('GET', p .. 'seen:' .. idx) or ''
    mark = redis.call('HMGET', p .. 'prof:' .. idx, 'qt', 'qn')
    mark[3] = redis.call('LINDEX', p .. 'psearch:' .. idx, -1)
  end
end
local new_ids = redis.call('LRANGE', p .. 'items:ids', tonumber(ARGV[4]), -1)
local changed = redis.call('LRANGE', p .. 'catalog:log', tonumber(ARGV[3]), -1)
local version = redis.call('LLEN', p .. 'catalog:log')
local records, created = {}, {}
for start = 1, #changed, 500 do
  local chunk = {}
  for i = start, math.min(start + 499, #changed) do chunk[#chunk + 1] = changed[i] end
  local r = redis.call('HMGET', p .. 'items:rec', unpack(chunk))
  local c = redis.call('HMGET', p .. 'items:created', unpack(chunk))
  for i = 1, #chunk do records[#records + 1] = r[i] or ''; created[#created + 1] = c[i] or '' end
end
local m = redis.call('HMGET', p .. 'meta', 'now', 'landmark', 'applied', 'cooc_entries', 'state_id', 'ready',
                     'vec_ver', 'drops')
local vec_ver, trending, degree = m[7] or '0', false, false
if ARGV[5] ~= '-' and ARGV[5] ~= vec_ver then
  trending = redis.call('GET', p .. 'vec:trending') or ''
  degree = redis.call('GET', p .. 'vec:degree') or ''
end
return {owner, hist, seen, new_ids, changed, records, created, version,
        m[1] or '', m[2] or '', m[3] or '0', m[4] or '0', redis.call('GET', p .. 'epoch') or '0',
        m[5] or '', m[6] or '', vec_ver, trending, degree, m[8] or '0', mark,
        changed_rows(p, ARGV[6] or '', ARGV[7] or '', ARGV[8] or '')}
"""


#: The co-occurrence rows a read needs beyond those READ returned (`_CHANGED_ROWS`).
#: ARGV: prefix, items, generations held, bytes held.
ROWS = _CHANGED_ROWS + """
return changed_rows(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""


class Scripts:
    """The scripts registered on one client (redis-py reloads them after a SCRIPT FLUSH)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.intern_many = client.register_script(INTERN_MANY)
        self.upsert_items = client.register_script(UPSERT_ITEMS)
        self.prepare = client.register_script(PREPARE)
        self.commit = client.register_script(COMMIT)
        self.compact_rows = client.register_script(COMPACT_ROWS)
        self.read = client.register_script(READ)
        self.rows = client.register_script(ROWS)

    def many(self, script: Script, calls: list[list[Any]]) -> list[Any]:
        """`script` once per argument list, pipelined in one round trip. A script passed to a
        pipeline as `script(args, client=pipe)` makes redis-py ask SCRIPT EXISTS for it before
        every execute: one more round trip per wave, two per event on the per-event path (an
        updater's quiet stream: freshness). EVALSHA goes as it is; a call the server answers
        NOSCRIPT (restarted, or SCRIPT FLUSH) is run again alone by the script, which loads it
        (every script is safe to repeat, and a NOSCRIPT call did nothing)."""
        pipe = self.client.pipeline(transaction=False)
        for args in calls:
            pipe.evalsha(script.sha, 0, *args)
        replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, redis.exceptions.NoScriptError):
                replies[i] = script(args=calls[i])
            elif isinstance(reply, Exception):
                raise reply
        return replies
