"""Penalties for what a validator peer sends that is refused for cause, and none for
what an honest validator may send.

Consensus messages with bad signatures, or signed but provably wrong, count
against the validator whose link delivered them, as malformed frames do: enough
of them get it banned. Gossiped transactions count against it when they break a
rule every node checks before forwarding (wrong chain, non-positive amount, a
mint by an account that did not issue the asset, an asset issued by an account
without the issuer role, a memo too long or not printable); refusals that depend on the state (a
balance spent meanwhile, a nonce already used) happen in honest gossip and cost
nothing.

One real ``Node`` (validator 0 of four) runs in the test's event loop; the test
speaks to it as validators of its testnet, with their keys, over real links.
"""

from __future__ import annotations

import logging

import plyvel
import pytest

from mura.admission import TRANSACTIONS_KIND
from mura.chain import codec
from mura.chain.assets import MAX_MEMO_BYTES
from mura.chain.block import Header, UncheckedBlock
from mura.chain.governance import AddValidator
from mura.chain.keys import SigningKey, load_key, sha256
from mura.chain.transaction import Body, Mint, Propose, Transfer, sign_transaction
from mura.consensus.messages import (
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    encode_message,
    proposal_payload,
)
from mura.genesis.format import genesis_block
from mura.genesis.testnet import TestnetLayout
from mura.p2p.client import open_link
from mura.p2p.frames import decode_frame
from mura.p2p.handshake import Identity
from mura.tests.node.validator_peers import MALFORMED_THRESHOLD, ConnectPeer, network_of, traffic
from mura.tests.rpc.support import TestNode, wait_until

#: The testnet's coin, issued by its treasury.
ASSET = "NAC"


async def test_a_validator_whose_votes_do_not_verify_is_banned(node: TestNode, connect_peer: ConnectPeer) -> None:
    """Honest validators forward only messages they checked: bad signatures on a link
    are that link's peer's doing, whatever validator the messages claim as sender."""
    liar = await connect_peer(1)
    for view in range(MALFORMED_THRESHOLD + 1):
        claimed = 2 if view % 2 else 1  # some claim another validator as their sender
        forged = Prepare(view, 1, bytes(32), claimed, bytes(64))
        await liar.send_consensus(node, encode_message(forged))
    await wait_until(lambda: traffic(node, liar).bans == 1, "the node to ban the validator")
    assert liar.public_key not in network_of(node).connected_peers()
    replica = node.node.replica
    assert replica is not None and replica.rejected["bad_message_signature"] >= MALFORMED_THRESHOLD


async def test_votes_for_views_out_of_the_window_cost_the_sender_nothing(
    node: TestNode, connect_peer: ConnectPeer
) -> None:
    """An honest validator far off in views is not misbehaving: its votes are dropped,
    not held against it."""
    peer = await connect_peer(1)
    window = 32
    for offset in range(MALFORMED_THRESHOLD + 5):
        vote = Commit.sign(peer.key, 1, node.node.rules.chain_id, 1_000 + window + offset, 1, bytes(32))
        await peer.send_consensus(node, encode_message(vote))
    replica = node.node.replica
    assert replica is not None
    await wait_until(lambda: replica.rejected["outside_window"] >= MALFORMED_THRESHOLD + 5, "the votes to be dropped")
    assert (traffic(node, peer).malformed, traffic(node, peer).refused, traffic(node, peer).bans) == (0, 0, 0)
    assert peer.public_key in network_of(node).connected_peers()


async def test_gossip_no_honest_node_would_forward_counts_against_the_peer(
    node: TestNode, connect_peer: ConnectPeer, testnet: TestnetLayout
) -> None:
    peer = await connect_peer(1)
    chain_id = node.node.rules.chain_id
    stranger = SigningKey.generate()
    treasury = load_key(testnet.directory / "keys" / "treasury.key")
    bodies: list[tuple[SigningKey, str, Body]] = [
        (treasury, "another-chain", Transfer(ASSET, bytes(32), 1)),
        (stranger, chain_id, Mint(ASSET, bytes(32), 5)),
        # A malformed validator: refused whoever proposes it (not issuing without the issuer role:
        # that role changes by governance, so a node a block behind may refuse what another admitted).
        (stranger, chain_id, Propose(AddValidator(stranger.public_key, "Stranger Office", "10.0.0.1:1"))),
        (treasury, chain_id, Transfer(ASSET, bytes(32), 1, "x" * (MAX_MEMO_BYTES + 1))),
        (treasury, chain_id, Transfer(ASSET, bytes(32), 1, "amount 1\x1b[2K")),
    ]
    batches = [
        [sign_transaction(key, chain_id=chain, nonce=0, body=body).encoded] for key, chain, body in bodies
    ]
    for batch in batches:
        assert peer.network.send(node.node.key.public_key, TRANSACTIONS_KIND, batch)
    await wait_until(lambda: traffic(node, peer).malformed == len(batches), "every batch to count against the peer")
    assert len(node.node.mempool) == 0


async def test_gossip_refused_for_the_state_costs_the_peer_nothing(
    node: TestNode, connect_peer: ConnectPeer, testnet: TestnetLayout
) -> None:
    """A transfer from an account this node sees without funds may be funded where the
    peer stands: refused, not held against the peer."""
    peer = await connect_peer(1)
    chain_id = node.node.rules.chain_id
    treasury = load_key(testnet.directory / "keys" / "treasury.key")
    poor = [
        sign_transaction(SigningKey.generate(), chain_id=chain_id, nonce=0, body=Transfer(ASSET, bytes(32), 5))
        for _ in range(50)
    ]
    good = sign_transaction(treasury, chain_id=chain_id, nonce=0, body=Transfer(ASSET, bytes(32), 5))
    batch = [transaction.encoded for transaction in poor] + [good.encoded]
    assert peer.network.send(node.node.key.public_key, TRANSACTIONS_KIND, batch)
    await wait_until(lambda: good.hash in node.node.mempool, "the good transaction to be admitted")
    assert (traffic(node, peer).malformed, traffic(node, peer).refused, traffic(node, peer).bans) == (0, 0, 0)
    assert len(node.node.mempool) == 1


async def test_gossip_refused_by_the_replacement_and_supply_rules_costs_the_peer_nothing(
    node: TestNode, connect_peer: ConnectPeer, testnet: TestnetLayout
) -> None:
    """Versions of one nonce arrive in any order from honest peers, and a mint that fits
    where the peer stands may not fit beside this node's pending mints: refused, not held
    against the peer. A rebroadcast of the replaced version does not flip the pool back."""
    peer = await connect_peer(1)
    chain_id = node.node.rules.chain_id
    treasury = load_key(testnet.directory / "keys" / "treasury.key")

    def signed(nonce: int, body: Transfer | Mint) -> bytes:
        return sign_transaction(treasury, chain_id=chain_id, nonce=nonce, body=body).encoded

    first, second = (signed(0, Transfer(ASSET, bytes(32), amount)) for amount in (1, 2))
    marker = sign_transaction(treasury, chain_id=chain_id, nonce=2, body=Transfer(ASSET, bytes(32), 1))
    batches = [[first], [second], [first, signed(1, Mint(ASSET, bytes(32), 2**64 - 1)), marker.encoded]]
    for batch in batches:
        assert peer.network.send(node.node.key.public_key, TRANSACTIONS_KIND, batch)
    await wait_until(lambda: marker.hash in node.node.mempool, "the last batch to be handled")
    assert [tx.encoded for tx in node.node.mempool.pending_for(treasury.public_key)] == [second, marker.encoded]
    assert (traffic(node, peer).malformed, traffic(node, peer).refused, traffic(node, peer).bans) == (0, 0, 0)


async def test_a_backlog_gossiped_in_one_batch_is_admitted_whole(
    node: TestNode, connect_peer: ConnectPeer, testnet: TestnetLayout
) -> None:
    """A node that was cut off sends a sender's backlog as one run of nonces: every one of
    them is admitted, not only those within the nonce gap of the sender's next nonce."""
    peer = await connect_peer(1)
    chain_id = node.node.rules.chain_id
    treasury = load_key(testnet.directory / "keys" / "treasury.key")
    run = [
        sign_transaction(treasury, chain_id=chain_id, nonce=nonce, body=Transfer(ASSET, bytes(32), 1))
        for nonce in range(200)
    ]
    assert len(run) > node.node.mempool.status().max_nonce_gap + 1
    assert peer.network.send(node.node.key.public_key, TRANSACTIONS_KIND, [tx.encoded for tx in run])
    await wait_until(lambda: run[-1].hash in node.node.mempool, "the whole run to be admitted")
    assert [tx.hash for tx in node.node.mempool.pending_for(treasury.public_key)] == [tx.hash for tx in run]


async def test_equivocation_is_logged_once_per_validator_and_height_and_counts_against_it(
    node: TestNode, connect_peer: ConnectPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """A validator signing two votes in every view and phase leaves evidence of each, one
    WARNING line for the height, and a ban once it is over the threshold."""
    equivocator = await connect_peer(1)
    chain_id = node.node.rules.chain_id
    caplog.set_level(logging.DEBUG, logger="mura.node")
    for view in range(6):
        for phase in (Prepare, Commit):
            for block_hash in (b"a" * 32, b"b" * 32):
                vote = phase.sign(equivocator.key, 1, chain_id, view, 1, block_hash)
                await equivocator.send_consensus(node, encode_message(vote))
    replica = node.node.replica
    assert replica is not None
    await wait_until(lambda: len(replica.evidence) == 12, "evidence of every equivocation")
    node_log = [r for r in caplog.records if r.name == "mura.node"]
    warnings = [r for r in node_log if r.levelno == logging.WARNING and "equivocation" in r.getMessage()]
    assert len(warnings) == 1
    assert traffic(node, equivocator).refused == 12


async def test_a_heavy_new_view_is_refused_on_its_cheap_checks(node: TestNode, connect_peer: ConnectPeer) -> None:
    """A NEW-VIEW frame of several megabytes whose proposal is not its primary's: refused
    on the sender and the signature, its block's body never looked at (a NEW-VIEW was once
    decoded down to every transaction before any check: one frame cost seconds of CPU)."""
    attacker = await connect_peer(1)
    chain_id = node.node.rules.chain_id
    junk = [bytes([index % 251]) * 300 for index in range(20_000)]
    header = Header(chain_id, 1, bytes(32), 0, attacker.public_key, sha256(b"not these"), bytes(32), bytes(32))
    block = UncheckedBlock(header, codec.encode([header.to_fields(), junk]))
    view = 5  # its primary is validator 1 of 4: the attacker, so the proposal's signature is checked
    signature = attacker.key.sign(proposal_payload(chain_id, view, 1, header.hash))
    changes = (ViewChange.sign(attacker.key, 1, chain_id, view, 1, None, None),)
    heavy = encode_message(NewView(view, 1, changes, PrePrepare(view, block, 1, signature)))
    assert len(heavy) > 6_000_000
    replica = node.node.replica
    assert replica is not None
    for _ in range(3):
        await attacker.send_consensus(node, heavy)
    await wait_until(lambda: replica.rejected["invalid_new_view"] >= 1, "the NEW-VIEW to be refused")
    # One copy reached the replica (the repeats are the same bytes); refused for its single
    # view change, before its block's body was checked or a transaction decoded.
    assert replica.rejected["transaction_root_mismatch"] == 0
    assert traffic(node, attacker).refused == 1


async def test_a_peer_whose_link_opens_is_offered_the_pending_transactions(
    node: TestNode, testnet: TestnetLayout
) -> None:
    """Gossip lost while a link was down is not lost for good: the transactions a block
    could take next go to the peer as soon as its link opens."""
    chain_id = node.node.rules.chain_id
    treasury = load_key(testnet.directory / "keys" / "treasury.key")
    pending = [
        sign_transaction(treasury, chain_id=chain_id, nonce=nonce, body=Transfer(ASSET, bytes(32), 1))
        for nonce in range(5)
    ]
    for transaction in pending:
        await node.rpc.result("tx_submit", [transaction.encoded.hex()])
    name = testnet.genesis.validators[1].name
    key = load_key(testnet.directory / "keys" / f"{name}.key")
    identity = Identity(
        key, chain_id, genesis_block(testnet.genesis)[0].hash, frozenset(testnet.genesis.validator_keys())
    )
    url = f"http://127.0.0.1:{network_of(node).listen_port}/p2p"
    async with await open_link(url, identity, expected_public_key=node.node.key.public_key) as link:
        offered: set[bytes] = set()
        while len(offered) < len(pending):
            frame = decode_frame(await link.receive_frame(timeout=10))
            if frame.kind == TRANSACTIONS_KIND:
                offered |= set(frame.payload)
    assert offered == {transaction.encoded for transaction in pending}


async def test_a_disk_that_fails_a_write_stops_consensus_with_one_line(
    node: TestNode, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vote record or chain store that cannot be written (a disk full) is the operator's
    to fix: one CRITICAL line naming it, no traceback, and the node asked to stop."""

    def fail(now_ms: int) -> list[object]:
        raise plyvel.IOError("IO error: No space left on device")

    monkeypatch.setattr(node.node.replica, "timeout", fail)
    node.node.consensus.post(("timeout", None))
    await wait_until(node.node._stop_requested.is_set, "the node to be asked to stop")
    lines = [record for record in caplog.records if "consensus stopped" in record.getMessage()]
    assert len(lines) == 1 and "No space left on device" in lines[0].getMessage()
    assert lines[0].exc_info is None
