"""Session state: one Redis hash per conversation, folded from the log (agent console).

Keys (``{p}`` = ``settings.topic_prefix``; tenant and conversation ids have ``%`` and ``:``
escaped, so one tenant's keys can never spell another's):

* ``cs:{p}:{tenant}:conv:{conversation}``: the state hash, text values (see :func:`changes`;
  ``projections.session_api.decode_state`` types them; ``_`` fields are internal);
* ``cs:{p}:{tenant}:conv:{conversation}:seen``: the ids of its last ``recent_ids`` events;
* ``cs:projection:session:{p}:positions``: field ``topic:partition`` -> next offset.

Contract (``projections.contract.Projection``): a batch is applied by one Lua script, so
data and positions change in one atomic write. A record is applied only if its offset is
at or past the stored position of its partition, past the last offset the conversation
took from that partition (hash field ``_o:topic:partition``: a replay with positions
lost but data kept is exact however long the conversation), AND its event id is not
among the conversation's recent ids (the same event again at a new offset: a producer
retry, a worker re-run); either way the position moves past it. An event is applied
only from its home topic (``streams.topics.ROUTES``): the enrich stage's pass-through
copies of lifecycle events on the enriched topic only move the position.

Every field is a function of the set of events, not of how the topics were interleaved
(a field fed by one topic follows that topic's order; ``status`` comes from sticky
flags; ``last_event_*`` is the greatest (time, stage, id)), so a live run and a rebuild
give identical hashes. Closed conversations expire ``settings.session_ttl_s`` after
their last applied event.

If the store has lost writes (a Redis restart without persistence, a restored snapshot,
a wipe), the positions it holds are behind the ones this instance wrote: ``apply`` then
raises :class:`~projections.contract.StoreRewound` and changes nothing; the runner re-reads
``positions()`` and replays from there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from events.base import Event
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade
from events.delivery import ReplyDelivered
from events.enrichment import MessageEnriched
from processors.taxonomy import SPECIAL_LABELS
from projections.contract import Applied, Position, StoreRewound
from streams.settings import Settings
from streams.topics import ROUTES, Topics

NAME = "session"
RECENT_IDS = 128
#: Tie-break of events with the same time (those caused by one message share it).
_STAGE = {
    ConversationStarted: 0,
    MessageReceived: 1,
    MessageEnriched: 2,
    DecisionMade: 3,
    ClarificationRequested: 4,
    CaseEscalated: 5,
    ReplyDelivered: 6,
    FeedbackReceived: 7,
    ConversationClosed: 8,
}

_LUA = """
local positions, batch = KEYS[1], cjson.decode(ARGV[1])
local ttl, window = tonumber(ARGV[2]), tonumber(ARGV[3])
if batch.expect_any == 1 and redis.call('EXISTS', positions) == 0 then
  return {'rewound', '*'}
end
local pos = {}
for field, expected in pairs(batch.expected) do
  local stored = tonumber(redis.call('HGET', positions, field) or '0')
  if stored < expected then return {'rewound', field} end
  pos[field] = stored
end
local function stored_at(field)
  if pos[field] == nil then
    pos[field] = tonumber(redis.call('HGET', positions, field) or '0')
  end
  return pos[field]
end
local function later(a, b)  -- byte-wise a > b, whatever the server's locale
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local function json(t) return (string.gsub(cjson.encode(t), '\\\\/', '/')) end
local function push(hk, field, value, limit, pop_back)
  local list = cjson.decode(redis.call('HGET', hk, field) or '[]')
  local at = nil
  if pop_back then for i, v in ipairs(list) do if v == value then at = i end end end
  if at then
    for _ = #list, at + 1, -1 do table.remove(list) end
  else
    table.insert(list, value)
  end
  while #list > limit do table.remove(list, 1) end
  redis.call('HSET', hk, field, json(list))
  return list[#list]
end
local n = {applied = 0, duplicate = 0, stale = 0, ignored = 0}
local dirty = {}
for _, e in ipairs(batch.events) do
  if e.off < stored_at(e.pos) then
    n.stale = n.stale + 1
  else
    pos[e.pos], dirty[e.pos] = e.off + 1, true
    local hk, sk, own = KEYS[e.c], KEYS[e.c + 1], '_o:' .. e.pos
    if e.home == 0 then
      n.ignored = n.ignored + 1
    elseif e.off <= tonumber(redis.call('HGET', hk, own) or '-1')
        or redis.call('LPOS', sk, e.id) then
      n.duplicate = n.duplicate + 1
    else
      n.applied = n.applied + 1
      redis.call('HSET', hk, own, string.format('%d', e.off))
      redis.call('LPUSH', sk, e.id)
      redis.call('LTRIM', sk, 0, window - 1)
      local flat = {}
      for k, v in pairs(e.set) do flat[#flat + 1] = k; flat[#flat + 1] = v end
      if #flat > 0 then redis.call('HSET', hk, unpack(flat)) end
      for k, v in pairs(e.incr) do redis.call('HINCRBY', hk, k, v) end
      redis.call('HINCRBY', hk, 'event_count', 1)
      if e.intent then push(hk, 'intent_history', e.intent, 10, false) end
      if e.topic then
        redis.call('HSET', hk, 'current_topic', push(hk, 'context_stack', e.topic, 5, true))
      end
      local last = redis.call('HGET', hk, '_order')
      if not last or later(e.ord, last) then
        redis.call('HSET', hk, '_order', e.ord, 'last_event_id', e.id,
                   'last_event_type', e.type, 'last_event_at', e.at)
      end
      local flags = redis.call('HMGET', hk, 'closed', 'escalated')
      local status = 'open'
      if flags[1] == '1' then status = 'closed' elseif flags[2] == '1' then status = 'escalated' end
      redis.call('HSET', hk, 'status', status)
      if flags[1] == '1' and ttl > 0 then
        redis.call('EXPIRE', hk, ttl)
        redis.call('EXPIRE', sk, ttl)
      end
    end
  end
end
for field in pairs(dirty) do
  redis.call('HSET', positions, field, string.format('%d', pos[field]))
end
return {'ok', n.applied, n.duplicate, n.stale, n.ignored}
"""


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def live_key(topic_prefix: str) -> str:
    """The key naming the live generation of ``topic_prefix``'s session keys (absent or
    empty: the first generation, keys without a generation tag)."""
    return f"cs:projection:{NAME}:{topic_prefix}:live"


class SessionKeys:
    """The Redis key scheme of one topic prefix and generation (``rebuild`` fills a new
    generation, then points :func:`live_key` at it)."""

    def __init__(self, topic_prefix: str, generation: str = "") -> None:
        tag = f"~{generation}" if generation else ""  # '~' is never in a topic name
        self.generation = generation
        self.namespace = f"cs:{topic_prefix}{tag}:"
        self.positions = f"cs:projection:{NAME}:{topic_prefix}{tag}:positions"

    @classmethod
    def live(cls, client: Any, topic_prefix: str) -> SessionKeys:
        """The keys of the generation :func:`live_key` names now."""
        return cls(topic_prefix, _text(client.get(live_key(topic_prefix)) or ""))

    def conversation(self, tenant_id: str, conversation_id: str) -> str:
        return f"{self.namespace}{_escape(tenant_id)}:conv:{_escape(conversation_id)}"

    def seen(self, tenant_id: str, conversation_id: str) -> str:
        return self.conversation(tenant_id, conversation_id) + ":seen"

    def scan_pattern(self) -> str:
        special = "*?[]\\"
        escaped = "".join("\\" + c if c in special else c for c in self.namespace)
        return escaped + "*:conv:*"

    def kind(self, key: str) -> str | None:
        """``"state"``, ``"seen"``, or None for a key that is not this scheme's."""
        if not key.startswith(self.namespace):
            return None
        parts = key[len(self.namespace) :].split(":")
        if len(parts) == 3 and parts[1] == "conv":
            return "state"
        if len(parts) == 4 and parts[1] == "conv" and parts[3] == "seen":
            return "seen"
        return None


def _num(value: float) -> str:
    return repr(round(float(value), 6))


def changes(event: Event) -> dict[str, Any]:
    """What ``event`` does to its conversation's hash (pure): fields to ``set``, counters
    to ``incr``, and the top ``intent`` / ``topic`` for the history and context stack."""
    env = event.envelope
    out: dict[str, Any] = {
        "set": {"tenant_id": env.tenant_id, "conversation_id": env.conversation_id},
        "incr": {},
    }
    at = env.occurred_at.isoformat(timespec="milliseconds")
    put: dict[str, str] = out["set"]
    if isinstance(event, ConversationStarted):
        put.update(channel=event.channel, started_at=at, locale=event.locale or "")
    elif isinstance(event, MessageReceived):
        put.update(channel=event.channel, last_message_id=event.message_id, last_message_at=at)
        out["incr"]["turn_count"] = 1
    elif isinstance(event, MessageEnriched):
        top = event.intents[0] if event.intents else None
        put.update(
            last_intent=top.label if top else "",
            last_intent_confidence=_num(top.score if top else 0.0),
            sentiment_label=event.sentiment.label,
            sentiment_valence=_num(event.sentiment.valence),
            frustration=_num(event.sentiment.frustration),
            language=event.language,
        )
        if top is not None:
            out["intent"] = top.label
            if top.label not in SPECIAL_LABELS:
                out["topic"] = top.label
    elif isinstance(event, DecisionMade):
        put.update(
            last_action=event.action,
            last_action_reason=event.reason,
            last_action_confidence=_num(event.confidence),
            last_action_at=at,
        )
    elif isinstance(event, CaseEscalated):
        put.update(
            escalated="1",
            case_id=event.case_id,
            escalation_reason=event.reason,
            escalation_priority=event.priority,
            escalated_at=at,
        )
    elif isinstance(event, ReplyDelivered):
        put.update(last_delivery_status=event.status)
        if event.status == "delivered":
            out["incr"]["replies_delivered"] = 1
    elif isinstance(event, ConversationClosed):
        put.update(
            closed="1", closed_at=at, close_reason=event.reason, resolved=str(int(event.resolved))
        )
    elif isinstance(event, FeedbackReceived):
        put.update(feedback_rating=str(event.rating))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SessionProjection:
    """Conversation session state in Redis (see the module docstring for the contract)."""

    name = NAME
    concurrent_write = True  # redis-py clients are thread-safe
    max_batch = 2000  # one batch is one Lua script: it blocks Redis while it runs

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        *,
        recent_ids: int = RECENT_IDS,
        generation: str | None = None,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        #: None: follow the live generation (looked up again by positions(), so a swap
        #: by a rebuild reaches a running projection as a rewind); else this generation.
        self.generation = generation
        self.keys = (
            SessionKeys(settings.topic_prefix, generation)
            if generation is not None
            else SessionKeys.live(redis_client, settings.topic_prefix)
        )
        self.recent_ids = recent_ids
        #: Records of the last batch / of every batch: applied, duplicate, stale, ignored.
        self.last: dict[str, int] = {}
        self.counts: dict[str, int] = dict.fromkeys(("applied", "duplicate", "stale", "ignored"), 0)
        self._topics = Topics(settings.topic_prefix)
        self._script = redis_client.register_script(_LUA)
        self._stored: dict[str, int] = {}  # what this instance knows the store holds

    @classmethod
    def from_settings(
        cls, settings: Settings, *, generation: str | None = None
    ) -> SessionProjection:
        """A projection on its own client to ``settings.redis_url``. The client retries once
        at once (a pooled socket to a restarted server); the runner does the backing off."""
        client = redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, settings, generation=generation)

    def topics(self) -> list[str]:
        t = self._topics
        return [t.inbound, t.enriched, t.decisions, t.cases, t.deliveries]

    def positions(self) -> Position:
        if self.generation is None:
            keys = SessionKeys.live(self.redis, self.settings.topic_prefix)
            if keys.generation != self.keys.generation:
                self.keys, self._stored = keys, {}
        stored = {_text(k): int(v) for k, v in self.redis.hgetall(self.keys.positions).items()}
        self._stored = dict(stored)
        out: Position = {}
        for field, offset in stored.items():
            topic, _, partition = field.rpartition(":")
            out[(topic, int(partition))] = offset
        return out

    def apply(self, batch: Sequence[Applied]) -> None:
        if not batch:
            return
        keys = [self.keys.positions]
        slots: dict[tuple[str, str], int] = {}
        events: list[dict[str, Any]] = []
        touched: dict[str, int] = {}
        for item in batch:
            record, event = item.record, item.event
            env = event.envelope
            conversation = (env.tenant_id, env.conversation_id)
            if conversation not in slots:
                slots[conversation] = len(keys) + 1  # Lua arrays start at 1
                keys += [self.keys.conversation(*conversation), self.keys.seen(*conversation)]
            field = f"{record.topic}:{record.partition}"
            touched[field] = max(touched.get(field, 0), record.offset + 1)
            home = ROUTES.get(type(event))
            ms = int(env.occurred_at.timestamp() * 1000)
            events.append(
                {
                    "pos": field,
                    "off": record.offset,
                    "c": slots[conversation],
                    "id": event.event_id,
                    "home": int(home is None or self._topics.name(home) == record.topic),
                    "ord": f"{max(ms, 0):015d}.{_STAGE.get(type(event), 9)}.{event.event_id}",
                    "type": event.event_type(),
                    "at": env.occurred_at.isoformat(timespec="milliseconds"),
                    **changes(event),
                }
            )
        expected = {f: self._stored[f] for f in touched if f in self._stored}
        payload = {"expect_any": int(bool(self._stored)), "expected": expected, "events": events}
        args: list[str | int] = [
            json.dumps(payload, separators=(",", ":")),
            self.settings.session_ttl_s,
            self.recent_ids,
        ]
        result = self._script(keys=keys, args=args)
        if _text(result[0]) == "rewound":
            raise StoreRewound(
                f"{self.keys.positions} is behind this projection at {_text(result[1])}: "
                "the store lost writes; re-read positions() and replay"
            )
        self.last = dict(zip(self.counts, (int(n) for n in result[1:]), strict=True))
        for kind, n in self.last.items():
            self.counts[kind] += n
        for field, offset in touched.items():
            self._stored[field] = max(self._stored.get(field, 0), offset)

    def wipe(self) -> int:
        """Delete this prefix's positions, then its conversation keys (SCAN + DEL in
        batches of 500); return how many keys went. Positions go first, so a wipe cut
        short leaves data that a replay from 0 deduplicates, never positions without
        their data. Stop a running ``run`` of the same prefix first."""
        deleted = int(self.redis.delete(self.keys.positions))
        self._stored = {}
        chunk: list[str] = []
        for key in self.redis.scan_iter(match=self.keys.scan_pattern(), count=1000):
            if self.keys.kind(_text(key)) is not None:
                chunk.append(_text(key))
            if len(chunk) >= 500:
                deleted += int(self.redis.delete(*chunk))
                chunk = []
        if chunk:
            deleted += int(self.redis.delete(*chunk))
        return deleted

    def promote(self) -> str:
        """Make this projection's generation the live one (one SET); returns the one
        that was live before."""
        key = live_key(self.settings.topic_prefix)
        return _text(self.redis.set(key, self.keys.generation, get=True) or "")

    def summary(self) -> dict[str, int]:
        """Conversations held for this prefix, in total and by status."""
        names = [
            _text(k)
            for k in self.redis.scan_iter(match=self.keys.scan_pattern(), count=1000)
            if self.keys.kind(_text(k)) == "state"
        ]
        counts = {"conversations": len(names)}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, "status")
        for status in pipe.execute():
            label = f"status_{_text(status)}"
            counts[label] = counts.get(label, 0) + 1
        return counts

    def close(self) -> None:
        self.redis.close()
