"""The block feed and one websocket's subscriptions (rpc/subscriptions.py), without a socket:
each block rendered and encoded once for every subscriber, the limit per websocket, and
subscriptions that start only once their frame is answered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mura.chain.block import Block
from mura.rpc import subscriptions as subscriptions_module
from mura.rpc.errors import RpcError
from mura.rpc.render import render_block_header
from mura.rpc.subscriptions import BlockFeed, BlockNotice, Subscriptions

from .test_websocket import PREFIX, block


class Recorder:
    """A subscriber that keeps what it is handed."""

    def __init__(self) -> None:
        self.notices: list[tuple[str, BlockNotice]] = []

    def deliver(self, subscription_id: str, notice: BlockNotice) -> None:
        self.notices.append((subscription_id, notice))


def test_a_block_is_rendered_and_encoded_once_however_many_subscribe(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[int] = []

    def counted(rendering: Block, prefix: str) -> dict[str, Any]:
        rendered.append(rendering.height)
        return render_block_header(rendering, prefix)

    monkeypatch.setattr(subscriptions_module, "render_block_header", counted)
    feed = BlockFeed(address_prefix=PREFIX)
    feed.block_committed(block(1))
    assert rendered == [], "nothing is rendered while nobody subscribes"
    recorders = [Recorder() for _ in range(3)]
    ids = [feed.subscribe(recorder) for recorder in recorders for _ in range(2)]
    assert len(set(ids)) == 6 and feed.subscriptions == 6
    feed.block_committed(block(2))
    assert rendered == [2]
    notices = [notice for recorder in recorders for _, notice in recorder.notices]
    assert len(notices) == 6 and all(notice is notices[0] for notice in notices), "one notice shared by all"
    assert [subscription for recorder in recorders for subscription, _ in recorder.notices] == ids


def test_a_notice_frame_is_the_notification_of_its_subscription() -> None:
    feed = BlockFeed(address_prefix=PREFIX)
    recorder = Recorder()
    subscription = feed.subscribe(recorder)
    committed = block(9)
    feed.block_committed(committed)
    [(given, notice)] = recorder.notices
    assert given == subscription and notice.height == 9
    assert json.loads(notice.frame(subscription)) == {
        "jsonrpc": "2.0",
        "method": "chain_subscription",
        "params": {"subscription": subscription, "result": render_block_header(committed, PREFIX)},
    }
    feed.unsubscribe(subscription)
    feed.unsubscribe(subscription)
    feed.block_committed(block(10))
    assert len(recorder.notices) == 1 and feed.subscriptions == 0


def test_a_websockets_subscriptions_are_limited_start_after_their_frame_and_end_together() -> None:
    feed = BlockFeed(address_prefix=PREFIX)
    held = Subscriptions(feed, Recorder(), limit=2)
    first = held.subscribe("final_blocks")
    assert held.starting(first)
    held.start()
    assert not held.starting(first)
    second = held.subscribe("final_blocks")
    with pytest.raises(RpcError) as busy:
        held.subscribe("final_blocks")
    assert busy.value.code == -32000 and busy.value.data == {
        "limit": "max_subscriptions_per_websocket", "max_subscriptions_per_websocket": 2,
    }
    assert set(held) == {first, second} and feed.subscriptions == 2
    assert held.unsubscribe(second) and not held.unsubscribe(second) and not held.unsubscribe("0x0000000000000000")
    assert held.subscribe("final_blocks") in held
    held.close()
    held.close()
    assert len(held) == 0 and feed.subscriptions == 0
