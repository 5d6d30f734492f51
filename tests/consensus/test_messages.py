"""Wire messages: canonical round trips, strict decoding, domain-separated signatures."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mura.chain import codec
from mura.chain.block import CommitCertificate, UncheckedBlock, commit_vote_payload
from mura.chain.errors import DecodeError
from mura.chain.keys import verify_signature
from mura.consensus.messages import (
    BlockRequest,
    Commit,
    FinalBlock,
    Message,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Tag,
    ViewChange,
    decode_message,
    encode_message,
    message_tag,
    prepare_payload,
    proposal_payload,
    view_change_payload,
)
from mura.consensus.votes import RecordedVote
from mura.sim.ledger import CHAIN_ID, checked
from mura.tests.consensus.replica_cluster import Cluster, prepare_from, proposal_for


def samples() -> list[Message]:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    signatures = tuple((index, prepare_from(cluster, index, proposal).signature) for index in (0, 1, 2))
    prepared = PreparedCertificate(0, 1, proposal.block_hash, proposal.signature, signatures)
    change = ViewChange.sign(cluster.keys[2], 2, CHAIN_ID, 1, 1, prepared, checked(proposal.block))
    empty_change = ViewChange.sign(cluster.keys[3], 3, CHAIN_ID, 1, 1, None, None)
    certificate = CommitCertificate(1, 0, proposal.block_hash, ((0, bytes(64)), (1, bytes(64)), (3, bytes(64))))
    return [
        proposal,
        prepare_from(cluster, 1, proposal),
        Commit.sign(cluster.keys[1], 1, CHAIN_ID, 0, 1, proposal.block_hash),
        change,
        empty_change,
        NewView(1, 1, (change.without_block(), empty_change), proposal_for(cluster, view=1)),
        BlockRequest(7, 3),
        FinalBlock(proposal.block, certificate),
    ]


SAMPLES = samples()


def with_checked_blocks(message: Message) -> Message:
    """``message`` with the blocks it carries checked (decoding leaves them unchecked)."""
    if isinstance(message, (PrePrepare, FinalBlock)):
        return replace(message, block=message.block.check())
    if isinstance(message, ViewChange) and message.prepared_block is not None:
        return replace(message, prepared_block=message.prepared_block.check())
    if isinstance(message, NewView):
        pre_prepare = with_checked_blocks(message.pre_prepare)
        assert isinstance(pre_prepare, PrePrepare)
        return replace(message, pre_prepare=pre_prepare)
    return message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_round_trip(message: Message) -> None:
    data = encode_message(message)
    assert with_checked_blocks(decode_message(data)) == message
    assert encode_message(decode_message(data)) == data


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_blocks_arrive_unchecked(message: Message) -> None:
    """Decoding reads a block up to its header: its body is checked only when used."""
    decoded = decode_message(encode_message(message))
    blocks = [getattr(decoded, "block", None), getattr(decoded, "prepared_block", None)]
    if isinstance(decoded, NewView):
        blocks.append(decoded.pre_prepare.block)
    assert all(block is None or isinstance(block, UncheckedBlock) for block in blocks)


def test_invalid_new_view_whose_view_changes_carry_blocks() -> None:
    """A NEW-VIEW's view changes travel without their blocks; one that carries them is
    refused before any of them is read."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    signatures = tuple((index, prepare_from(cluster, index, proposal).signature) for index in (0, 1, 2))
    prepared = PreparedCertificate(0, 1, proposal.block_hash, proposal.signature, signatures)
    change = ViewChange.sign(cluster.keys[2], 2, CHAIN_ID, 1, 1, prepared, checked(proposal.block))
    heavy = NewView(1, 1, (change,), proposal_for(cluster, view=1))
    with pytest.raises(DecodeError, match="carries a block"):
        decode_message(encode_message(heavy))


def test_message_tag_is_read_from_the_first_bytes() -> None:
    for message in SAMPLES:
        assert message_tag(encode_message(message)) is not None
    assert message_tag(encode_message(BlockRequest(7, 3))) is Tag.BLOCK_REQUEST
    assert message_tag(b"") is None
    assert message_tag(b"\x92\x09") is None


def test_commit_is_signed_over_the_certificate_payload() -> None:
    commit = SAMPLES[2]
    assert isinstance(commit, Commit)
    payload = commit_vote_payload(CHAIN_ID, commit.height, commit.view, commit.block_hash)
    assert commit.signing_payload(CHAIN_ID) == payload
    assert verify_signature(Cluster().keys[1].public_key, commit.signature, payload)


def test_signing_payloads_are_domain_separated() -> None:
    block_hash = bytes(range(32))
    payloads = {
        proposal_payload(CHAIN_ID, 1, 2, block_hash),
        prepare_payload(CHAIN_ID, 1, 2, block_hash),
        commit_vote_payload(CHAIN_ID, 2, 1, block_hash),
        prepare_payload("other-chain", 1, 2, block_hash),
        view_change_payload(CHAIN_ID, 1, 2, None),
    }
    assert len(payloads) == 5


def test_view_change_inside_a_new_view_drops_its_block_but_keeps_its_signature() -> None:
    change = SAMPLES[3]
    assert isinstance(change, ViewChange) and change.prepared_block is not None
    stripped = change.without_block()
    assert stripped.prepared_block is None
    assert stripped.signing_payload(CHAIN_ID) == change.signing_payload(CHAIN_ID)


def test_recorded_vote_round_trip() -> None:
    change = SAMPLES[3]
    assert isinstance(change, ViewChange) and change.prepared is not None and change.prepared_block is not None
    vote = RecordedVote(1, 0, Commit.phase, change.prepared.block_hash, change.prepared, checked(change.prepared_block))
    assert RecordedVote.decode(vote.encode()) == vote


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [99, 1, 2],
        [2, 0, 1, bytes(32), 0],
        [2, 0, 1, bytes(32), 0, bytes(64), "extra"],
        [2, -1, 1, bytes(32), 0, bytes(64)],
        [2, 0, 1, bytes(31), 0, bytes(64)],
        [2, 0, 1, bytes(32), 256, bytes(64)],
        [6, 1, True],
        [7, b"not a block", b"not a certificate"],
        [4, 1, 1, [1], b"", 0, bytes(64)],
    ],
)
def test_invalid_fields(fields: list[object]) -> None:
    with pytest.raises(DecodeError):
        decode_message(codec.encode(fields))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_invalid_random_bytes_raise_decode_error_only(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([encode_message(message) for message in SAMPLES]), st.integers(0, 10_000), st.integers(0, 255))
def test_invalid_mutations_raise_decode_error_only(data: bytes, position: int, value: int) -> None:
    mutated = bytearray(data)
    mutated[position % len(mutated)] = value
    with contextlib.suppress(DecodeError):
        decode_message(bytes(mutated))
    truncated = data[: position % len(data)]
    with pytest.raises(DecodeError):
        decode_message(truncated)
