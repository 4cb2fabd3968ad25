"""The online state kept in Redis, so several API processes serve one consistent state.

Modules: `connection` (client, errors, key layout), `codec` (binary/JSON formats), `scripts`
(the Lua that makes each change atomic), `plan` (one atomic change), `snapshot` (one read
request's data in one round trip), the read adapters `ids`, `catalog`, `counters`,
`cooccurrence`, `histories`, `profiles`, the bulk path `bulk`, and `state` (RedisState)."""
