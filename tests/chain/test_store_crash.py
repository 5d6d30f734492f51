"""Crash consistency: a process that dies while committing leaves a whole block or none."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mura.chain.block import verify_certificate
from mura.chain.keys import PUBLIC_KEY_SIZE, SignatureCache
from mura.chain.state import MemoryState, apply_block
from mura.chain.store import ACCOUNT_TRANSACTIONS, BALANCE_HISTORY, HELD_ASSETS, Store
from mura.chain.transaction import parties
from mura.tests.ledger_fixtures import ASSET, CHAIN_ID, RULES, VALIDATORS, genesis, load_all_holders_at

#: Run as a module of the installed package, so that it imports the fixtures as the tests do.
CHILD = ["-m", "mura.tests.chain.crash_child"]
#: Puts in one block's batch with the child's three transfers, one to a new account: block,
#: certificate, height index, 3 transaction locations, 9 state entries (3 senders' nonces, 5
#: balances, the asset's state), 5 balance history entries, 1 first holding, 6 transaction
#: index entries (sender and recipient of each), lattice, head.
PUTS_PER_BLOCK = 29
#: Where in the batch the history indexes are written: the first balance history entry, the
#: first holding, the first transaction index entry.
FIRST_BALANCE_HISTORY, FIRST_HOLDING, FIRST_ACCOUNT_TRANSACTION = 15, 20, 21


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *CHILD, *args], capture_output=True, text=True, timeout=120)


def assert_consistent(path: Path) -> int:
    """The store opens, holds every block up to its head with a valid certificate,
    nothing beyond it, state whose recomputed root is the head's state root, and
    history indexes that are exactly those of its blocks."""
    with Store(path) as store:
        head = store.head
        validators = [validator.public_key for validator in VALIDATORS]
        for height in range(1, head.height + 1):
            block = store.load_block(height)
            certificate = store.load_certificate(height)
            assert block is not None and certificate is not None
            verify_certificate(
                certificate, chain_id=CHAIN_ID, height=height, block_hash=block.hash, validators=validators
            )
            assert store.load_height(block.hash) == height
            for index, transaction in enumerate(block.transactions):
                assert store.load_transaction_location(transaction.hash) == (height, index)
        assert store.load_block(head.height + 1) is None
        assert store.load_certificate(head.height + 1) is None
        assert store.recompute_lattice().root() == head.state_root
        state = MemoryState()
        state.entries.update(store.iterate_state())
        balances = state.balances(ASSET)
        assert store.load_asset_state(ASSET).supply == sum(balances.values())
        assert store.load_asset_state(ASSET).holders == len(balances)
        assert_history_consistent(store)
        return head.height


def assert_history_consistent(store: Store) -> None:
    """The history indexes hold exactly what the blocks up to the head wrote: every
    transaction under each of its parties, the balances after every block (as replaying
    the blocks from genesis gives them), every account that ever held the asset, and
    nothing of a later block."""
    head = store.head.height
    replay = MemoryState()
    replay.commit(genesis()[1])
    balances_at = [replay.balances(ASSET)]
    transactions: dict[bytes, bytes] = {}
    for height in range(1, head + 1):
        block, parent = store.load_block(height), store.load_block(height - 1)
        assert block is not None and parent is not None
        replay.commit(apply_block(replay, parent.header, block, rules=RULES, signatures=SignatureCache()))
        balances_at.append(replay.balances(ASSET))
        for index, transaction in enumerate(block.transactions):
            for address in parties(transaction):
                transactions[address + height.to_bytes(8, "big") + index.to_bytes(4, "big")] = transaction.hash
    stored = {key[1:]: value for key, value in store.db.iterator(prefix=ACCOUNT_TRANSACTIONS)}
    assert stored == transactions
    history_heights = {
        int.from_bytes(key[-8:], "big") for key in store.db.iterator(prefix=BALANCE_HISTORY, include_value=False)
    }
    assert max(history_heights) <= head
    held = {address for balances in balances_at for address in balances}
    for height, balances in enumerate(balances_at):
        assert load_all_holders_at(store, ASSET, height, limit=4) == sorted(balances.items())
        for address in held:
            assert store.load_balance_at(address, ASSET, height) == balances.get(address, 0)
    stored_holdings = [
        (key[1 : 1 + PUBLIC_KEY_SIZE], key[1 + PUBLIC_KEY_SIZE :].decode())
        for key in store.db.iterator(prefix=HELD_ASSETS, include_value=False)
    ]
    assert sorted(stored_holdings) == sorted((address, ASSET) for address in held)


@pytest.mark.parametrize(
    "puts",
    [
        0,
        1,
        PUTS_PER_BLOCK // 2,
        FIRST_BALANCE_HISTORY,
        FIRST_HOLDING,
        FIRST_ACCOUNT_TRANSACTION,
        PUTS_PER_BLOCK - 2,
        PUTS_PER_BLOCK - 1,
    ],
)
def test_death_inside_the_batch_leaves_the_previous_height(tmp_path: Path, puts: int) -> None:
    result = run_child(str(tmp_path / "data"), "die-at", "4", str(puts))
    assert result.returncode == 17, result.stderr
    assert assert_consistent(tmp_path / "data") == 3


@pytest.mark.parametrize("puts", [-1, PUTS_PER_BLOCK])
def test_death_right_after_the_write_leaves_the_new_height(tmp_path: Path, puts: int) -> None:
    """After the batch's last put (``PUTS_PER_BLOCK`` counts them exactly: one fewer leaves
    the previous height) the block is wholly in."""
    result = run_child(str(tmp_path / "data"), "die-at", "4", str(puts))
    assert result.returncode == 17, result.stderr
    assert assert_consistent(tmp_path / "data") == 4


def test_sigkill_at_arbitrary_moments_never_leaves_a_partial_block(tmp_path: Path) -> None:
    chooser = random.Random(20261123)
    path = tmp_path / "data"
    reached = 0
    for _ in range(4):
        target = reached + chooser.randint(2, 8)
        child = subprocess.Popen(
            [sys.executable, *CHILD, str(path), "forever"], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        last = 0
        for line in child.stdout:
            last = int(line)
            if last >= target:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        recovered = assert_consistent(path)
        # Killed while committing the block after ``last``: that block is wholly in or out.
        assert recovered in (last, last + 1)
        reached = recovered
    assert reached >= 8
