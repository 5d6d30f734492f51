"""Joining by state sync against replaying from genesis: ``python -m mura.bench.sync`` (``make bench-sync``).

Prints, for a state of ``--accounts`` accounts (each with a balance):

* what serving costs a node: building the manifest of its snapshot (once per
  snapshot interval, in a thread), in seconds and per entry;
* a join by snapshot over real loopback links from two serving peers (both in
  this process, as is the joining node: they share its one event loop and its
  GIL), until the store is finished at the snapshot's height: seconds, bytes
  received on the links (frames as sealed, every message of the sync), state
  entries, chunks;
* a replay of the blocks that made such a state: ``--replay-accounts``
  accounts, each created by a transfer from the treasury, in blocks of
  ``--block-transactions``, replayed into a fresh store as catch-up does (the
  certificate checked, the block decoded and applied without checking its
  transactions' signatures again, as ``sync.verify_signatures = false`` does,
  then saved): seconds and bytes of blocks and certificates. When it is
  smaller than ``--accounts``, the figures are scaled linearly to
  ``--accounts`` and said to be.

The snapshot's state is made by a genesis that allocates the balances (a
million transfers would take long to sign); it holds the same entries a
chain of transfers makes (a balance per account, and the treasury's).
Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mura.chain.block import Block, CommitCertificate, verify_certificate
from mura.chain.keys import SignatureCache, sha256
from mura.chain.snapshot import build_manifest
from mura.chain.state import GenesisAsset, apply_block, build_block
from mura.chain.store import Store
from mura.chain.transaction import Transfer, sign_transaction
from mura.p2p.network import Network
from mura.p2p.settings import PeerAddress
from mura.p2p.snapshot_service import SnapshotKeeper, SnapshotService, SnapshotServingLimits
from mura.p2p.state_sync import StateSync
from mura.p2p.sync_messages import STATE_SYNC_KIND, decode_sync_message, is_request
from mura.tests.ledger_fixtures import (
    ACCOUNTS,
    ASSET,
    CHAIN_ID,
    ISSUER,
    RULES,
    VALIDATORS,
    asset_terms,
    certify,
    genesis,
    seal,
)

HOST = "127.0.0.1"
VALIDATOR_KEYS = [validator.public_key for validator in VALIDATORS]
GENESIS_HASH = sha256(b"mura-bench-sync")


def account(index: int) -> bytes:
    return sha256(b"bench-account" + index.to_bytes(8, "big"))


# --- the state a joining node fetches ------------------------------------------------------------


def snapshot_source(path: Path, accounts: int) -> Store:
    """A store at height 1 whose state holds ``accounts`` balances of a second asset."""
    allocations = tuple((account(index), 1 + index % 1000) for index in range(accounts))
    block, changes = genesis(GenesisAsset(asset_terms("JPYT"), allocations))
    del allocations
    store = Store(path)
    store.initialize(block, changes)
    del changes
    parent = store.load_block(0)
    assert parent is not None
    transfer = sign_transaction(ACCOUNTS[0], chain_id=CHAIN_ID, nonce=0, body=Transfer(ASSET, account(0), 1))
    block, changes = seal(store, parent, [transfer])
    store.save_block(block, certify(block), changes)
    return store


async def join_by_snapshot(source: Store, joined: Path, *, peers: int) -> dict[str, Any]:
    """Two peers serve ``source``'s snapshot; a node with an empty store joins from them."""
    keeper = SnapshotKeeper(store=source, interval=source.height, keep=1)
    started = time.perf_counter()
    view = source.open_state_view()
    manifest = await asyncio.to_thread(build_manifest, view.height, view.iterate_state())
    build_seconds = time.perf_counter() - started
    view.close()
    keeper.start()
    keeper.on_commit(source.head)
    while not keeper.ready:  # the same build again, as a node makes it
        await asyncio.sleep(0.05)
    servers = [await _serve(source, keeper, index) for index in range(1, 1 + peers)]
    store = Store(joined)
    sync: StateSync

    async def on_frame(peer: bytes, payload: Any) -> None:
        message = decode_sync_message(payload)
        if not is_request(message):
            sync.on_answer(peer, message)  # type: ignore[arg-type]

    def linked(peer: bytes, connected: bool) -> None:
        if connected:
            sync.peer_linked(peer)

    network = Network(key=VALIDATORS[0], chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, listen_host=HOST,
                      listen_port=0, peers=[PeerAddress(net.public_key, HOST, net.listen_port) for net, _ in servers],
                      admitted=VALIDATOR_KEYS, handlers={STATE_SYNC_KIND: on_frame}, on_peer_change=linked)
    sync = StateSync(store=store, network=network, peers=[net.public_key for net, _ in servers], chain_id=CHAIN_ID,
                     genesis_validators=source.load_validators_at(1), genesis_hash=GENESIS_HASH)
    await network.start()
    started = time.perf_counter()
    outcome = await sync.run()
    seconds = time.perf_counter() - started
    received = network.stats.total.bytes_in
    await network.stop()
    for net, service in servers:
        await net.stop()
        await service.stop()
    await keeper.stop()
    assert outcome is not None and store.head.hash == source.head.hash
    assert store.recompute_lattice().root() == store.head.state_root
    store.close()
    return {
        "entries": manifest.entries,
        "ranges": len(manifest.ranges),
        "manifest_build_s": round(build_seconds, 2),
        "manifest_build_us_per_entry": round(build_seconds / manifest.entries * 1e6, 2),
        "join_s": round(seconds, 2),
        "join_bytes": received,
        "entry_bytes": outcome.entry_bytes,
        "chunks": outcome.chunks,
    }


async def _serve(source: Store, keeper: SnapshotKeeper, index: int) -> tuple[Network, SnapshotService]:
    network: Network
    service = SnapshotService(
        keeper=keeper, store=source, send=lambda peer, payload: network.send(peer, STATE_SYNC_KIND, payload),
        limits=SnapshotServingLimits(),
    )

    async def on_frame(peer: bytes, payload: Any) -> None:
        message = decode_sync_message(payload)
        if is_request(message):
            service.on_request(peer, message)

    network = Network(key=VALIDATORS[index], chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, listen_host=HOST,
                      listen_port=0, peers=[], admitted=VALIDATOR_KEYS, handlers={STATE_SYNC_KIND: on_frame})
    await network.start()
    return network, service


# --- the blocks that make it --------------------------------------------------------------------


def chain_of_transfers(path: Path, accounts: int, per_block: int) -> Store:
    """A store whose blocks create ``accounts`` accounts, one transfer each from the issuer."""
    store = Store(path)
    block, changes = genesis()
    store.initialize(block, changes)
    signatures = SignatureCache(capacity=per_block * 2)
    for start in range(0, accounts, per_block):
        transfers = [
            sign_transaction(ISSUER, chain_id=CHAIN_ID, nonce=index, body=Transfer(ASSET, account(index), 1))
            for index in range(start, min(accounts, start + per_block))
        ]
        built = build_block(store, store.head, transfers, proposer=VALIDATOR_KEYS[0],
                            timestamp_ms=store.head.timestamp_ms + 1000, rules=RULES, signatures=signatures)
        assert not built.refused
        store.save_block(built.block, certify(built.block), built.changes)
    return store


def replay(source: Store, path: Path) -> dict[str, Any]:
    """Replay ``source``'s blocks into a fresh store as a catching-up node does."""
    store = Store(path)
    genesis_block = source.load_block(0)
    assert genesis_block is not None
    block, changes = genesis()
    store.initialize(block, changes)
    received = 0
    started = time.perf_counter()
    for height in range(1, source.height + 1):
        data, certificate_data = source.load_block_bytes(height), source.load_certificate_bytes(height)
        assert data is not None and certificate_data is not None
        received += len(data) + len(certificate_data)
        certificate = CommitCertificate.decode(certificate_data)
        block = Block.decode(data)
        verify_certificate(certificate, chain_id=CHAIN_ID, height=height, block_hash=block.hash,
                           validators=VALIDATOR_KEYS)
        changes = apply_block(store, store.head, block, rules=RULES, signatures=SignatureCache(),
                              verify_signatures=False)
        store.save_block(block, certificate, changes)
    seconds = time.perf_counter() - started
    assert store.head.hash == source.head.hash
    store.close()
    return {"blocks": source.height, "replay_s": round(seconds, 2), "replay_bytes": received}


def replay_empty_blocks(path: Path, blocks: int) -> dict[str, Any]:
    """What each block of an idle chain costs a replay: ``blocks`` empty blocks, made and replayed."""
    source = Store(path / "idle")
    block, changes = genesis()
    source.initialize(block, changes)
    for _ in range(blocks):
        built = build_block(source, source.head, [], proposer=VALIDATOR_KEYS[0],
                            timestamp_ms=source.head.timestamp_ms + 60_000, rules=RULES, signatures=SignatureCache())
        source.save_block(built.block, certify(built.block), built.changes)
    measured = replay(source, path / "idle-replayed")
    source.close()
    return {"blocks": blocks, "replay_ms_per_block": round(measured["replay_s"] / blocks * 1000, 3),
            "bytes_per_block": round(measured["replay_bytes"] / blocks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts in the state a node joins")
    parser.add_argument("--replay-accounts", type=int, default=100_000,
                        help="accounts made by the blocks replayed (scaled to --accounts when fewer)")
    parser.add_argument("--block-transactions", type=int, default=5_000, help="transfers per replayed block")
    parser.add_argument("--peers", type=int, default=2, help="peers serving the snapshot")
    parser.add_argument("--empty-blocks", type=int, default=2_000, help="empty blocks replayed (an idle chain)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    replay_accounts = min(options.replay_accounts, options.accounts)
    figures: dict[str, Any] = {"accounts": options.accounts}
    with tempfile.TemporaryDirectory(prefix="mura-bench-sync-") as directory:
        work = Path(directory)
        print(f"making a state of {options.accounts:,} accounts ...", flush=True)
        source = snapshot_source(work / "source", options.accounts)
        figures["snapshot"] = asyncio.run(join_by_snapshot(source, work / "joined", peers=options.peers))
        source.close()
        print(f"making {replay_accounts:,} accounts by blocks of {options.block_transactions:,} transfers ...",
              flush=True)
        chain = chain_of_transfers(work / "chain", replay_accounts, options.block_transactions)
        measured = replay(chain, work / "replayed")
        chain.close()
        figures["idle"] = replay_empty_blocks(work, options.empty_blocks)
    scale = options.accounts / replay_accounts
    figures["replay"] = {**measured, "accounts": replay_accounts, "scaled_by": round(scale, 2),
                         "replay_s_scaled": round(measured["replay_s"] * scale, 1),
                         "replay_bytes_scaled": round(measured["replay_bytes"] * scale)}
    _print(figures)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


def _print(figures: dict[str, Any]) -> None:
    snapshot, replayed = figures["snapshot"], figures["replay"]
    print(f"state of {figures['accounts']:,} accounts: {snapshot['entries']:,} entries in {snapshot['ranges']} ranges")
    print(f"  serving: manifest built in {snapshot['manifest_build_s']} s "
          f"({snapshot['manifest_build_us_per_entry']} us per entry), once per snapshot")
    print(f"  join by snapshot: {snapshot['join_s']} s, {snapshot['join_bytes'] / 1e6:.1f} MB on the links "
          f"({snapshot['entry_bytes'] / 1e6:.1f} MB of entries, {snapshot['chunks']} chunks)")
    scaled = "" if replayed["scaled_by"] == 1 else (
        f"; scaled x{replayed['scaled_by']} to {figures['accounts']:,} accounts: {replayed['replay_s_scaled']} s, "
        f"{replayed['replay_bytes_scaled'] / 1e6:.1f} MB")
    print(f"  replay of {replayed['blocks']} blocks making {replayed['accounts']:,} accounts: "
          f"{replayed['replay_s']} s, {replayed['replay_bytes'] / 1e6:.1f} MB of blocks and certificates{scaled}")
    idle = figures["idle"]
    print(f"  an idle chain's blocks: {idle['replay_ms_per_block']} ms and {idle['bytes_per_block']} bytes each to "
          f"replay ({idle['blocks']} empty blocks)")


if __name__ == "__main__":
    main()
