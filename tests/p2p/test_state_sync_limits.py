"""Joining by state sync against peers that stall, stay busy, or vouch without standing: whose
word counts, and how long a joining node lets itself be held."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mura.chain.store import Store
from mura.p2p.state_sync import SyncSettings
from mura.p2p.sync_messages import (
    Chunk,
    ChunkRequest,
    ManifestPage,
    Proof,
    Refusal,
    SetChanges,
    decode_sync_message,
    encode_sync_message,
)
from mura.tests.p2p.test_state_sync import (
    FIRST,
    SECOND,
    THIRD,
    governed,
    honest,
    join,
    manifest_moving_lattice_sum,
    serving,
    source,
)

__all__ = ["governed", "source"]


def moved_address(payload: Any) -> Any:
    """The last set change's records with another peer address (keys, and so the hash, unchanged)."""
    message = decode_sync_message(payload)
    if not isinstance(message, SetChanges) or not message.changes:
        return payload
    *rest, last = message.changes
    records = tuple(replace(record, address="203.0.113.66:7000") for record in last.records)
    return encode_sync_message(SetChanges(message.height, (*rest, replace(last, records=records)), message.complete))


def one_range_a_page(payload: Any) -> Any:
    """Manifest pages of one range each: true ranges, but as many requests as ranges."""
    message = decode_sync_message(payload)
    if not isinstance(message, ManifestPage):
        return payload
    return encode_sync_message(ManifestPage(message.height, message.total, message.first, message.ranges[:1]))


def no_proof(payload: Any) -> Any:
    """Never answers for its proof of H."""
    return None if isinstance(decode_sync_message(payload), Proof) else payload


def busy_for_chunks(payload: Any) -> Any:
    """Every chunk request is answered busy."""
    message = decode_sync_message(payload)
    if not isinstance(message, Chunk):
        return payload
    return encode_sync_message(Refusal(ChunkRequest.TAG, message.height, "busy"))


def no_snapshot_for_chunks(payload: Any) -> Any:
    message = decode_sync_message(payload)
    if not isinstance(message, Chunk):
        return payload
    return encode_sync_message(Refusal(ChunkRequest.TAG, message.height, "no_snapshot"))


# --- whose word counts --------------------------------------------------------------------------


async def test_a_validator_removed_before_h_does_not_vouch(governed: Store, tmp_path: Path) -> None:
    """Validator 3 left the set at 12: with one member of set(14) it vouches for a lying manifest
    that adds up; counted, the honest member's chunks would be refused and its sender blamed."""
    assert FIRST == 3 and {SECOND, THIRD} == {1, 2}
    async with serving(governed, FIRST, manifest_moving_lattice_sum) as removed, \
            serving(governed, SECOND, manifest_moving_lattice_sum) as liar, \
            serving(governed, THIRD, honest) as honest_peer:
        outcome, joined, network = await join([removed, liar, honest_peer], tmp_path / "joined")
    try:
        assert outcome is None
        assert all(stats.refused == 0 for stats in network.stats.peers.values())
        assert honest_peer.service.served["chunk"] == 0
    finally:
        joined.close()


async def test_records_that_do_not_match_the_state_are_refused_not_a_crash(governed: Store, tmp_path: Path) -> None:
    """Names and addresses are not in any header: two members of set(14) (more than f = 1)
    giving another address than the state holds are found out at the end, and the height is
    given up."""
    async with serving(governed, SECOND, moved_address) as first, serving(governed, THIRD, moved_address) as second:
        outcome, joined, _ = await join([first, second], tmp_path / "joined")
    try:
        assert outcome is None
        assert not joined.initialized
    finally:
        joined.close()


# --- how long a node lets itself be held -------------------------------------------------------


async def test_a_manifest_in_short_pages_is_refused(source: Store, tmp_path: Path) -> None:
    async with serving(source, FIRST, one_range_a_page) as liar, serving(source, SECOND, honest) as honest_peer:
        outcome, joined, network = await join([liar, honest_peer], tmp_path / "joined")
    try:
        assert outcome is None
        assert liar.service.served["manifestpage"] == 1
        assert network.stats.peers[liar.network.public_key].refused == 1
    finally:
        joined.close()


async def test_a_peer_that_does_not_answer_holds_no_one_up(source: Store, tmp_path: Path) -> None:
    """Accounts are asked of every peer at once; f + 1 alike end the wait (the request timeout
    here outlasts the test's own)."""
    settings = SyncSettings(request_timeout_seconds=120)
    async with serving(source, FIRST, no_proof) as staller, serving(source, SECOND, honest) as second, \
            serving(source, THIRD, honest) as third:
        outcome, joined, _ = await join([staller, second, third], tmp_path / "joined", settings=settings)
    try:
        assert outcome is not None and outcome.height == source.height
    finally:
        joined.close()


async def test_a_height_that_cannot_be_had_in_time_is_given_up(source: Store, tmp_path: Path) -> None:
    settings = SyncSettings(request_timeout_seconds=120, deadline_seconds=1)
    async with serving(source, FIRST, no_proof) as staller, serving(source, SECOND, honest) as second:
        outcome, joined, _ = await join([staller, second], tmp_path / "joined", settings=settings)
    try:
        assert outcome is None
    finally:
        joined.close()


async def test_a_peer_that_is_always_busy_is_asked_no_more_after_a_while(source: Store, tmp_path: Path) -> None:
    settings = SyncSettings(busy_seconds=0.5, busy_pause_max_seconds=0.1)
    async with serving(source, FIRST, busy_for_chunks) as busy, \
            serving(source, SECOND, no_snapshot_for_chunks) as second, \
            serving(source, THIRD, no_snapshot_for_chunks) as third:
        outcome, joined, network = await join([busy, second, third], tmp_path / "joined", settings=settings)
    try:
        assert outcome is None
        assert busy.service.served["chunk"] >= 2
        assert all(stats.refused == 0 for stats in network.stats.peers.values())
    finally:
        joined.close()
