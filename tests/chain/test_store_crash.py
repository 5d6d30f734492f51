"""Crash consistency: a process that dies while committing leaves a whole block or none."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mura.chain.block import verify_certificate
from mura.chain.store import Store
from mura.tests.ledger_fixtures import CHAIN_ID, VALIDATORS

#: Run as a module of the installed package, so that it imports the fixtures as the tests do.
CHILD = ["-m", "mura.tests.chain.crash_child"]
#: Puts in one block's batch with three transfers: block, certificate, height
#: index, 3 transaction locations, 4 touched accounts, supply, validators, lattice, head.
PUTS_PER_BLOCK = 14


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *CHILD, *args], capture_output=True, text=True, timeout=120)


def assert_consistent(path: Path) -> int:
    """The store opens, holds every block up to its head with a valid certificate,
    nothing beyond it, and state whose recomputed root is the head's state root."""
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
        total = sum(account.balance for _, account in store.iterate_accounts())
        assert total == store.load_supply()
        return head.height


@pytest.mark.parametrize("puts", [0, 1, PUTS_PER_BLOCK // 2, PUTS_PER_BLOCK - 1])
def test_death_inside_the_batch_leaves_the_previous_height(tmp_path: Path, puts: int) -> None:
    result = run_child(str(tmp_path / "data"), "die-at", "4", str(puts))
    assert result.returncode == 17, result.stderr
    assert assert_consistent(tmp_path / "data") == 3


def test_death_right_after_the_write_leaves_the_new_height(tmp_path: Path) -> None:
    result = run_child(str(tmp_path / "data"), "die-at", "4", "-1")
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
