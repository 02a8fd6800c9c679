"""DM mailboxes in Redis, shared by every relay process (``serve --redis-url``).

A mailbox is a hash of items (id -> kind, time, body) with a sorted set for their order and a
hash of counters (items, bytes); one sorted set over all mailboxes orders items by age for
expiry. Every change is one Lua script, so a mailbox's limits hold however many processes
store into it at once, and an item is never half stored or half taken. Storing an item also
publishes it on its recipient's channel: each process that holds a connection of that user
delivers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from relay.config import Limits
from relay.mailbox_store import MailboxFull
from relay.redis_link import KEY_PREFIX, RedisLink, RedisUnavailable
from relay.resp import Arg
from relay.storage import MailItem

log = logging.getLogger("focusmate.relay")
EXPIRY = KEY_PREFIX + "m:expiry"  # sorted set: "<recipient>\n<id>" -> stored_at
TOTALS = KEY_PREFIX + "m:totals"  # hash: items, bytes over all mailboxes
EXPIRE_BATCH = 500

# KEYS: items, order, counters, expiry, totals. ARGV: id, kind, stored_at, body, max items, max
# bytes, channel, recipient. 1 stored, 0 already there, -1 too many items, -2 too many bytes.
_PUT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local items = tonumber(redis.call('HGET', KEYS[3], 'items') or '0')
local size = tonumber(redis.call('HGET', KEYS[3], 'bytes') or '0')
if items + 1 > tonumber(ARGV[5]) then return -1 end
if size + #ARGV[4] > tonumber(ARGV[6]) then return -2 end
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
local packed = ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], packed)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('HINCRBY', KEYS[3], 'items', 1)
redis.call('HINCRBY', KEYS[3], 'bytes', #ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[8] .. '\\n' .. ARGV[1])
redis.call('HINCRBY', KEYS[5], 'items', 1)
redis.call('HINCRBY', KEYS[5], 'bytes', #ARGV[4])
redis.call('PUBLISH', ARGV[7], ARGV[1] .. '\\n' .. packed)
return 1
"""

# Removes items; shared by take (one mailbox, ids given) and expire (ids from the age index).
_REMOVE = """
local function remove(prefix, recipient, id)
    local items, order, counters = prefix .. '{' .. recipient .. '}:i',
        prefix .. '{' .. recipient .. '}:o', prefix .. '{' .. recipient .. '}:c'
    local packed = redis.call('HGET', items, id)
    redis.call('ZREM', KEYS[1], recipient .. '\\n' .. id)
    if not packed then return nil end
    local body = string.match(packed, '^[^\\n]*\\n[^\\n]*\\n(.*)$')
    redis.call('HDEL', items, id)
    redis.call('ZREM', order, id)
    redis.call('HINCRBY', counters, 'items', -1)
    redis.call('HINCRBY', counters, 'bytes', -#body)
    redis.call('HINCRBY', KEYS[2], 'items', -1)
    redis.call('HINCRBY', KEYS[2], 'bytes', -#body)
    return id .. '\\n' .. packed
end
"""

# KEYS: expiry, totals. ARGV: key prefix, recipient, ids.
_TAKE = (
    _REMOVE
    + """
local taken = {}
for i = 3, #ARGV do
    local item = remove(ARGV[1], ARGV[2], ARGV[i])
    if item then taken[#taken + 1] = item end
end
return taken
"""
)

# KEYS: expiry, totals. ARGV: key prefix, cutoff, batch size. Returns how many went.
_EXPIRE = (
    _REMOVE
    + """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
local count = 0
for _, member in ipairs(old) do
    local recipient, id = string.match(member, '^([^\\n]*)\\n(.*)$')
    if remove(ARGV[1], recipient, id) then count = count + 1 end
end
return {count, #old}
"""
)

MAILBOX_PREFIX = KEY_PREFIX + "m:"


def mailbox_keys(recipient: str) -> tuple[str, str, str]:
    """(items, order, counters) of one mailbox."""
    base = f"{MAILBOX_PREFIX}{{{recipient}}}:"
    return base + "i", base + "o", base + "c"


def channel(recipient: str) -> str:
    return f"{KEY_PREFIX}u:{recipient}"


class SharedMailStore:
    announces = True

    def __init__(self, link: RedisLink, limits: Limits) -> None:
        self.link = link
        self.limits = limits
        self._put = link.script(_PUT)
        self._take = link.script(_TAKE)
        self._expire = link.script(_EXPIRE)
        self._watchers: dict[str, int] = {}  # recipient -> their connections to this process
        self._redeliveries: set[asyncio.Task[None]] = set()

    async def put(self, items: Sequence[MailItem], *, best_effort: bool = False) -> list[bool]:
        replies = await asyncio.gather(
            *(self.link.call("m:" + item.recipient, self._put_command(item)) for item in items),
            return_exceptions=True,
        )
        stored = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise RedisUnavailable(f"redis: {reply}")
            if reply == -1 and not best_effort:
                limit = self.limits.mailbox_max_items
                raise MailboxFull(f"the recipient's mailbox is full ({limit} items waiting)")
            if reply == -2 and not best_effort:
                raise MailboxFull("the recipient's mailbox is full (too many bytes waiting)")
            stored.append(reply == 1)
        return stored

    def _put_command(self, item: MailItem) -> tuple[Arg, ...]:
        return self._put.command(
            [*mailbox_keys(item.recipient), EXPIRY, TOTALS],
            [
                item.id,
                item.kind,
                repr(item.stored_at),
                item.body,
                self.limits.mailbox_max_items,
                self.limits.mailbox_max_bytes,
                channel(item.recipient),
                item.recipient,
            ],
        )

    async def waiting(self, recipient: str) -> list[MailItem]:
        items_key, order, _ = mailbox_keys(recipient)
        ids = await _call(self.link.client.zrange(order, 0, -1))
        if not ids:
            return []
        packed = await _call(self.link.client.hmget(items_key, ids))
        return [
            _item(recipient, item_id + b"\n" + value)
            for item_id, value in zip(ids, packed, strict=True)
            if value is not None  # (taken between the two reads)
        ]

    async def take(self, recipient: str, ids: Sequence[str]) -> list[MailItem]:
        if not ids:
            return []
        taken = await self.link.run(self._take, [EXPIRY, TOTALS], [MAILBOX_PREFIX, recipient, *ids])
        return [_item(recipient, raw) for raw in taken]

    async def expire(self, before: float) -> int:
        removed = 0
        while True:
            args = [MAILBOX_PREFIX, repr(before), EXPIRE_BATCH]
            count, looked = await self.link.run(self._expire, [EXPIRY, TOTALS], args)
            removed += int(count)
            if int(looked) < EXPIRE_BATCH:
                return removed

    async def totals(self) -> tuple[int, int]:
        items, size = await _call(self.link.client.hmget(TOTALS, "items", "bytes"))
        return int(items or 0), int(size or 0)

    async def watch(self, recipient: str, deliver: Callable[[MailItem], None]) -> None:
        self._watchers[recipient] = self._watchers.get(recipient, 0) + 1
        await self.link.listen(
            channel(recipient),
            partial(self._delivered, recipient, deliver),
            partial(self._missed, recipient, deliver),
        )

    async def unwatch(self, recipient: str) -> None:
        left = self._watchers.get(recipient, 0) - 1
        if left > 0:
            self._watchers[recipient] = left
        elif self._watchers.pop(recipient, None) is not None:
            self.link.unlisten(channel(recipient))

    def _delivered(self, recipient: str, deliver: Callable[[MailItem], None], data: bytes) -> None:
        deliver(_item(recipient, data))

    def _missed(self, recipient: str, deliver: Callable[[MailItem], None]) -> None:
        """The link to Redis came back: what was stored meanwhile was announced to no one
        here, so everything waiting goes out again (clients keep one copy per id)."""

        async def again() -> None:
            for item in await self.waiting(recipient):
                deliver(item)

        redelivery = self.link.persist(again, "relay.mail_redelivery_failed")
        task = asyncio.get_running_loop().create_task(redelivery)
        self._redeliveries.add(task)
        task.add_done_callback(self._redeliveries.discard)


def _item(recipient: str, raw: bytes) -> MailItem:
    item_id, kind, stored_at, body = raw.split(b"\n", 3)
    return MailItem(
        recipient=recipient,
        id=item_id.decode(),
        kind=kind.decode(),
        body=body.decode(),
        stored_at=float(stored_at),
    )


async def _call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (RedisError, OSError) as err:
        raise RedisUnavailable(f"redis: {err}") from None
