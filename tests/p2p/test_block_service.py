"""Tests for p2p/block_service.py: final blocks served from the store's own bytes, within
each peer's budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mura.chain.block import verify_certificate
from mura.chain.store import Store
from mura.chain.transaction import Transfer, sign_transaction
from mura.consensus.messages import FinalBlock, decode_message
from mura.consensus.serving import BlockServer, ServingLimits
from mura.p2p.block_service import BlockService
from mura.tests.ledger_fixtures import ACCOUNTS, CHAIN_ID, VALIDATORS, certify, genesis, seal

PEER = b"p" * 32
#: The asset the fixtures' genesis gives every account.
ASSET = "NAC"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Forty final blocks of four transfers each."""
    with Store(tmp_path_factory.mktemp("chain") / "data") as store:
        store.initialize(*genesis())
        for height in range(1, 41):
            parent = store.load_block(store.height)
            assert parent is not None
            body = Transfer(ASSET, ACCOUNTS[0].public_key, 1)
            transfers = [
                sign_transaction(ACCOUNTS[sender], chain_id=CHAIN_ID, nonce=height - 1, body=body)
                for sender in range(1, 5)
            ]
            block, changes = seal(store, parent, transfers)
            store.save_block(block, certify(block), changes)
        yield store


class Wire:
    """What left for each peer: the bytes a link would carry."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, peer: bytes, data: bytes) -> bool:
        self.sent.append((peer, data))
        return True


async def test_answers_are_the_stored_blocks_and_their_certificates(store: Store) -> None:
    wire = Wire()
    service = BlockService(source=store, send=wire.send, server=BlockServer(ServingLimits(batch=5)))
    assert await service.serve(PEER, 10, now_ms=0) == 5
    finals = [decode_message(data) for _, data in wire.sent]
    assert [final.height for final in finals] == [10, 11, 12, 13, 14]
    for final in finals:
        assert isinstance(final, FinalBlock)
        block = final.block.check()
        assert block.encode() == store.load_block_bytes(block.height)
        validators = [validator.public_key for validator in VALIDATORS]
        verify_certificate(
            final.certificate, chain_id=CHAIN_ID, height=block.height, block_hash=block.hash, validators=validators
        )


async def test_a_flood_of_requests_gets_the_budget_and_no_more(store: Store) -> None:
    """Requests for a new start height 40 times a second for ten seconds: what is sent
    stays within the burst plus the refill rate."""
    size = len(store.load_block_bytes(20) or b"")
    limits = ServingLimits(batch=16, bytes_per_second=20 * size, burst_bytes=40 * size)
    wire = Wire()
    service = BlockService(source=store, send=wire.send, server=BlockServer(limits))
    for request in range(400):
        await service.serve(PEER, 1 + request % 30, now_ms=request * 25)
    sent = sum(len(data) for _, data in wire.sent)
    assert sent <= (limits.burst_bytes + 10 * limits.bytes_per_second) * 1.1
    assert service.server.refused["over_budget"] > 0


async def test_nothing_is_sent_for_heights_not_final(store: Store) -> None:
    wire = Wire()
    service = BlockService(source=store, send=wire.send, server=BlockServer())
    assert await service.serve(PEER, store.height + 1, now_ms=0) == 0
    assert wire.sent == []
