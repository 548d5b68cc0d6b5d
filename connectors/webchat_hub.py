"""In-memory state of one web-chat connector process: conversations, sockets, replies.

Everything here is touched only from the event loop's thread, except
:meth:`ReplyHub.take_reports`, which the outbound consumer thread calls (it reads a
thread-safe queue).
"""

from __future__ import annotations

import asyncio
import queue
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from events.decisions import ReplyRequested

ConversationKey = tuple[str, str]  # (tenant_id, conversation_id)

MAX_CONVERSATIONS = 1_000_000
MAX_SEEN_REPLIES = 100_000
MAX_BUFFERED_PER_CONVERSATION = 50
MAX_BUFFERED_CONVERSATIONS = 10_000
SOCKET_QUEUE_SIZE = 1_000

STATUS_DELIVERED = "delivered"
STATUS_QUEUED = "queued"
STATUS_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    customer_id: str | None
    locale: str | None


class ConversationRegistry:
    """Conversations this process opened, per tenant, bounded (least recently used go).

    Stop-gap: the session-state projection (built from the conversation topics) will
    replace this, so that conversations survive restarts and are shared by replicas.
    """

    def __init__(self, capacity: int = MAX_CONVERSATIONS) -> None:
        self._known: OrderedDict[ConversationKey, ConversationInfo] = OrderedDict()
        self._capacity = capacity

    def add(self, tenant_id: str, conversation_id: str, info: ConversationInfo) -> None:
        self._known[(tenant_id, conversation_id)] = info
        self._known.move_to_end((tenant_id, conversation_id))
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

    def get(self, tenant_id: str, conversation_id: str) -> ConversationInfo | None:
        """The conversation if ``tenant_id`` owns it (another tenant's id is unknown)."""
        info = self._known.get((tenant_id, conversation_id))
        if info is not None:
            self._known.move_to_end((tenant_id, conversation_id))
        return info


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A ``ReplyDelivered`` to publish: ``index`` 0 for the first report of a reply."""

    reply: ReplyRequested
    status: str
    index: int = 0
    detail: str | None = None


def reply_message(reply: ReplyRequested) -> dict[str, Any]:
    """The JSON frame pushed to the customer's socket."""
    return {
        "type": "reply",
        "reply_id": reply.reply_id,
        "message_id": reply.message_id,
        "text": reply.text,
        "kind": reply.kind,
        "conversation_id": reply.envelope.conversation_id,
    }


class Connection:
    """One connected socket: a bounded queue of frames its writer task sends."""

    def __init__(self, key: ConversationKey, size: int = SOCKET_QUEUE_SIZE) -> None:
        self.key = key
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self.overflowed = False

    def offer(self, frame: dict[str, Any]) -> bool:
        """Queue ``frame``; a socket too slow to keep up is closed, not waited for."""
        if self.overflowed:
            return False
        try:
            self.queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            self.overflowed = True
            # Make room for the close marker so the writer stops.
            self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False


class ReplyHub:
    """Routes replies to sockets, buffers them while none is connected, dedups them."""

    def __init__(
        self,
        *,
        seen_capacity: int = MAX_SEEN_REPLIES,
        buffer_size: int = MAX_BUFFERED_PER_CONVERSATION,
        buffered_conversations: int = MAX_BUFFERED_CONVERSATIONS,
    ) -> None:
        self._sockets: dict[ConversationKey, set[Connection]] = {}
        self._buffers: OrderedDict[ConversationKey, deque[ReplyRequested]] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_capacity = seen_capacity
        self._buffer_size = buffer_size
        self._buffered_conversations = buffered_conversations
        self._reports: queue.SimpleQueue[DeliveryReport] = queue.SimpleQueue()

    # --- called on the event loop ------------------------------------------------------

    def connect(self, tenant_id: str, conversation_id: str) -> Connection:
        """Register a socket and hand it the replies buffered for its conversation."""
        key = (tenant_id, conversation_id)
        conn = Connection(key)
        self._sockets.setdefault(key, set()).add(conn)
        backlog = self._buffers.pop(key, deque())
        for reply in backlog:
            if conn.offer(reply_message(reply)):
                self._reports.put(
                    DeliveryReport(reply, STATUS_DELIVERED, 1, "flushed to a socket that connected")
                )
            else:
                self._reports.put(DeliveryReport(reply, STATUS_FAILED, 1, "socket overflowed"))
        return conn

    def disconnect(self, conn: Connection) -> None:
        conns = self._sockets.get(conn.key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._sockets[conn.key]

    def connected(self, tenant_id: str, conversation_id: str) -> int:
        return len(self._sockets.get((tenant_id, conversation_id), ()))

    def dispatch(self, reply: ReplyRequested) -> DeliveryReport | None:
        """Push ``reply`` to its sockets or buffer it; ``None`` if it was seen before."""
        if reply.reply_id in self._seen:
            self._seen.move_to_end(reply.reply_id)
            return None
        self._seen[reply.reply_id] = None
        while len(self._seen) > self._seen_capacity:
            self._seen.popitem(last=False)
        key = (reply.envelope.tenant_id, reply.envelope.conversation_id)
        frame = reply_message(reply)
        pushed = [conn.offer(frame) for conn in self._sockets.get(key, ())]
        if any(pushed):
            return DeliveryReport(reply, STATUS_DELIVERED)
        self._buffer(key, reply)
        return DeliveryReport(reply, STATUS_QUEUED)

    async def dispatch_all(self, replies: list[ReplyRequested]) -> list[DeliveryReport]:
        """:meth:`dispatch` for a batch (scheduled on the loop by the consumer thread)."""
        return [r for r in map(self.dispatch, replies) if r is not None]

    def _buffer(self, key: ConversationKey, reply: ReplyRequested) -> None:
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = deque()
        self._buffers.move_to_end(key)
        buf.append(reply)
        if len(buf) > self._buffer_size:
            self._drop(buf.popleft(), "reply buffer of the conversation is full")
        while len(self._buffers) > self._buffered_conversations:
            _, evicted = self._buffers.popitem(last=False)
            for old in evicted:
                self._drop(old, "too many conversations with buffered replies")

    def _drop(self, reply: ReplyRequested, why: str) -> None:
        self._reports.put(DeliveryReport(reply, STATUS_FAILED, 1, why))

    def buffered(self, tenant_id: str, conversation_id: str) -> int:
        return len(self._buffers.get((tenant_id, conversation_id), ()))

    # --- called from the consumer thread -----------------------------------------------

    def take_reports(self) -> list[DeliveryReport]:
        """Reports made on the loop since the last call (buffer flushes and drops)."""
        out: list[DeliveryReport] = []
        while True:
            try:
                out.append(self._reports.get_nowait())
            except queue.Empty:
                return out
