"""Subscriptions to final blocks: the feed the node tells of each commit, and the
``chain_subscribe`` / ``chain_unsubscribe`` methods.

The node tells a ``BlockFeed`` of every block it commits, where it tells the
``FinalityWatch``. With no subscription open that costs nothing; otherwise the
block's header is rendered (as ``chain_getBlock`` renders it, without
``transactions``) and JSON-encoded once, into a ``BlockNotice`` every
subscriber shares, and each subscriber is handed it. Handing it over must not
block or await: a websocket only queues it, and its own writer task sends it.

Each websocket holds its subscriptions in a ``Subscriptions``, which the
websocket puts in ``ACTIVE_SUBSCRIPTIONS`` for the calls its frames make. The
methods read them from there; a call over HTTP finds none and is answered
-32050 "Websocket only". A subscription made by a frame starts once that
frame's answer is on its way (the websocket calls ``start``), so a client
always learns a subscription's id before its first notification.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from mura.chain.block import Block
from mura.rpc.declarations import Method, Param, ParamInvalid, ParamType, Result, json_type_name
from mura.rpc.errors import SERVER_BUSY, WEBSOCKET_ONLY
from mura.rpc.render import BLOCK_HEADER_SCHEMA, render_block_header

#: The one topic there is: every block final on this node, in commit order.
FINAL_BLOCKS = "final_blocks"
TOPICS = (FINAL_BLOCKS,)
#: The method of every notification.
NOTIFICATION_METHOD = "chain_subscription"
SUBSCRIPTION_ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9a-f]{16}$"}
#: What each notification's ``params.result`` holds: chain_getBlock's result without ``transactions``.
NOTIFICATION_RESULT_SCHEMA = BLOCK_HEADER_SCHEMA


@dataclass(frozen=True, slots=True)
class BlockNotice:
    """One final block as every subscriber is sent it: rendered and encoded once."""

    #: The block's height.
    height: int
    #: The JSON text of its header (``render_block_header``).
    header: str

    def frame(self, subscription_id: str) -> str:
        """The notification for one subscription. The id is ours ("0x" and hex), so it is put
        into the text as it is rather than encoding the whole notification again."""
        return ('{"jsonrpc":"2.0","method":"' + NOTIFICATION_METHOD + '","params":{"subscription":"'
                + subscription_id + '","result":' + self.header + "}}")


class Subscriber(Protocol):
    """What holds subscriptions: a websocket, which queues each notice for its writer."""

    def deliver(self, subscription_id: str, notice: BlockNotice) -> None:
        """Take ``notice`` for ``subscription_id``; called on the commit path, so it must neither block nor await."""
        ...


class BlockFeed:
    """Told of every block the node commits; hands each open subscription the block's notice."""

    def __init__(self, *, address_prefix: str) -> None:
        self._prefix = address_prefix
        self._subscribers: dict[str, Subscriber] = {}

    @property
    def subscriptions(self) -> int:
        """Subscriptions open now, on every websocket."""
        return len(self._subscribers)

    def block_committed(self, block: Block) -> None:
        """Hand ``block``'s notice to every subscription, in the order they were made."""
        if not self._subscribers:
            return
        header = json.dumps(render_block_header(block, self._prefix), separators=(",", ":"), allow_nan=False)
        notice = BlockNotice(block.height, header)
        # A subscriber may close (and so unsubscribe) while it is handed the notice.
        for subscription_id, subscriber in list(self._subscribers.items()):
            subscriber.deliver(subscription_id, notice)

    def subscribe(self, subscriber: Subscriber) -> str:
        """A new subscription id for ``subscriber``: "0x" and 16 hex digits, hard to guess."""
        subscription_id = "0x" + secrets.token_hex(8)
        while subscription_id in self._subscribers:
            subscription_id = "0x" + secrets.token_hex(8)
        self._subscribers[subscription_id] = subscriber
        return subscription_id

    def unsubscribe(self, subscription_id: str) -> None:
        """End a subscription; ending one already ended is harmless."""
        self._subscribers.pop(subscription_id, None)


class Subscriptions:
    """One websocket's subscriptions, at most ``limit`` of them."""

    def __init__(self, feed: BlockFeed, subscriber: Subscriber, *, limit: int) -> None:
        self._feed = feed
        self._subscriber = subscriber
        self._limit = limit
        self._ids: set[str] = set()
        #: Made by the frame being answered; its notices wait until ``start``.
        self._starting: set[str] = set()

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def subscribe(self, topic: str) -> str:
        """A new subscription's id; -32000 "server busy" once ``limit`` are open."""
        assert topic in TOPICS, f"the topic param lets {topic!r} through"
        if len(self._ids) >= self._limit:
            raise SERVER_BUSY.error(
                {"limit": "max_subscriptions_per_websocket", "max_subscriptions_per_websocket": self._limit}
            )
        subscription_id = self._feed.subscribe(self._subscriber)
        self._ids.add(subscription_id)
        self._starting.add(subscription_id)
        return subscription_id

    def unsubscribe(self, subscription_id: str) -> bool:
        """End one of this websocket's subscriptions; False when it has none with that id."""
        if subscription_id not in self._ids:
            return False
        self._ids.discard(subscription_id)
        self._starting.discard(subscription_id)
        self._feed.unsubscribe(subscription_id)
        return True

    def starting(self, subscription_id: str) -> bool:
        """Whether the subscription was made by the frame being answered and has not started yet."""
        return subscription_id in self._starting

    def start(self) -> None:
        """The frame's answer is on its way: its subscriptions start."""
        self._starting.clear()

    def close(self) -> None:
        """End every subscription; closing twice is harmless."""
        for subscription_id in self._ids:
            self._feed.unsubscribe(subscription_id)
        self._ids.clear()
        self._starting.clear()


#: The subscriptions of the websocket whose frame is being answered; None over HTTP.
ACTIVE_SUBSCRIPTIONS: ContextVar[Subscriptions | None] = ContextVar("ACTIVE_SUBSCRIPTIONS", default=None)


def _active() -> Subscriptions:
    subscriptions = ACTIVE_SUBSCRIPTIONS.get()
    if subscriptions is None:
        raise WEBSOCKET_ONLY.error({"reason": "open a websocket at /ws to subscribe"})
    return subscriptions


def _check_topic(value: Any) -> str:
    if value not in TOPICS:
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else f"a {json_type_name(value)}"
        raise ParamInvalid(f"unknown topic {shown}; topics: {', '.join(TOPICS)}")
    return str(value)


def _check_subscription_id(value: Any) -> str:
    if not (isinstance(value, str) and len(value) == 18 and value.startswith("0x")
            and all(character in "0123456789abcdef" for character in value[2:])):
        raise ParamInvalid('expected a subscription id: "0x" and 16 lowercase hex digits, as chain_subscribe gave it')
    return value


TOPIC = ParamType({"type": "string", "enum": list(TOPICS)}, _check_topic)
SUBSCRIPTION_ID = ParamType(SUBSCRIPTION_ID_SCHEMA, _check_subscription_id)


async def _subscribe(topic: str) -> str:
    return _active().subscribe(topic)


async def _unsubscribe(subscription_id: str) -> bool:
    return _active().unsubscribe(subscription_id)


def subscription_methods() -> list[Method]:
    """``chain_subscribe`` and ``chain_unsubscribe``, declared for the engine and ``rpc.discover``."""
    notification = (
        '{"jsonrpc":"2.0","method":"chain_subscription","params":{"subscription":ID,"result":HEADER}}'
    )
    return [
        Method(
            name="chain_subscribe",
            handler=_subscribe,
            summary="Websocket only: be sent every block final on this node, as it becomes final.",
            params=(
                Param("topic", TOPIC, f"What to be sent; only {FINAL_BLOCKS!r} exists.", required=False,
                      default=FINAL_BLOCKS),
            ),
            result=Result("subscription", SUBSCRIPTION_ID_SCHEMA, "The subscription's id."),
            errors=(WEBSOCKET_ONLY, SERVER_BUSY),
            description="Over a websocket at /ws. After the answer, each block final on this node is sent, in "
            f"height order, as the notification {notification}, where HEADER is chain_getBlock's result without "
            "transactions: height, hash, chain_id, parent_hash, timestamp_ms, proposer, transaction_root, "
            "state_root, next_validators_hash and transaction_count. A client that reads too slowly is closed "
            "(code 1008, the reason naming rpc.websocket_queue): reconnect, subscribe again and read the blocks "
            "missed by height with chain_getBlock. Over HTTP: -32050.",
        ),
        Method(
            name="chain_unsubscribe",
            handler=_unsubscribe,
            summary="Websocket only: end a subscription of this websocket; no notification of it follows.",
            params=(Param("subscription", SUBSCRIPTION_ID, "The id chain_subscribe gave."),),
            result=Result("ended", {"type": "boolean"}, "False when this websocket has no such subscription."),
            errors=(WEBSOCKET_ONLY,),
        ),
    ]
