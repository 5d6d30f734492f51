"""Four real validator processes and an asset that expires.

The treasury issues a voucher that lapses a few seconds ahead and hands it to
residents. A validator killed before the expiry is restarted after the chain
has passed it: it catches up over the block that returned the residents'
balances to the treasury, and ends with the same blocks, state root and
balances as the validators that made that block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mura.chain.assets import AssetState
from mura.chain.keys import SigningKey
from mura.chain.store import Store
from mura.chain.transaction import Body, IssueAsset, Transfer
from mura.rpc.errors import TRANSACTION_NOT_FOUND
from mura.tests.node.cluster import Cluster, RpcFailure, wait_for

pytestmark = pytest.mark.processes

VOUCHER = "FOREST-VOUCHER"
SUPPLY = 10_000
#: What each resident receives.
AMOUNTS = (2_500, 1_200, 300, 7)
#: How far ahead of its issue the voucher expires: room to make the issue and the
#: transfers final (half a second on a quiet machine) and to kill a validator.
EXPIRY_AHEAD_MS = 5_000
#: The validator killed before the expiry and restarted after it.
LATE = 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "testnet")
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


def is_final(cluster: Cluster, index: int, transaction_hash: str) -> bool:
    """Whether node ``index`` holds the transaction in a final block (not yet: pending, or
    not heard of yet); one the node dropped fails the test with the rule that dropped it."""
    try:
        cluster.call(index, "chain_getTransaction", transaction_hash)
    except RpcFailure as failure:
        if failure.error["code"] == TRANSACTION_NOT_FOUND.code:
            return False
        raise
    return True


def submit_and_wait(cluster: Cluster, transactions: list[Body], *, nodes: range) -> None:
    """The treasury's transactions, submitted to node 0, final on every node of ``nodes``."""
    hashes = [cluster.submit(0, cluster.sign(cluster.treasury, body)) for body in transactions]
    for index in nodes:
        for transaction_hash in hashes:
            wait_for(lambda index=index, transaction_hash=transaction_hash: is_final(cluster, index, transaction_hash),
                     f"transaction {transaction_hash} to be final on node {index}")


def head_block(cluster: Cluster, index: int) -> dict[str, Any]:
    return cluster.call(index, "chain_getBlock", cluster.height(index))  # type: ignore[no-any-return]


def first_block_at_or_after(store: Store, timestamp_ms: int) -> int:
    """The height of the first block whose timestamp reaches ``timestamp_ms``."""
    for height in range(1, store.height + 1):
        block = store.load_block(height)
        assert block is not None
        if block.header.timestamp_ms >= timestamp_ms:
            return height
    raise AssertionError(f"no block reaches {timestamp_ms} up to height {store.height}")


def voucher_state(store: Store, residents: list[bytes], treasury: bytes) -> dict[str, Any]:
    """What one node holds of the voucher: its state, the lapse block, and the balances around it."""
    expiry_ms = store.load_asset(VOUCHER).expiry_ms  # type: ignore[union-attr]
    lapse_height = first_block_at_or_after(store, expiry_ms)
    return {
        "asset_state": store.load_asset_state(VOUCHER),
        "lapse_height": lapse_height,
        "balances": [store.load_balance(resident, VOUCHER) for resident in residents],
        "treasury": store.load_balance(treasury, VOUCHER),
        "balances_before": [store.load_balance_at(resident, VOUCHER, lapse_height - 1) for resident in residents],
        "balances_at": [store.load_balance_at(resident, VOUCHER, lapse_height) for resident in residents],
    }


def test_validator_down_over_an_expiry_catches_up_to_the_same_lapse(cluster: Cluster) -> None:
    treasury = cluster.treasury.public_key
    residents = [SigningKey.generate().public_key for _ in AMOUNTS]
    expiry_ms = int(time.time() * 1000) + EXPIRY_AHEAD_MS
    issue = IssueAsset(
        asset=VOUCHER,
        name="Forest volunteering voucher",
        decimals=0,
        supply=SUPPLY,
        reissuable=False,
        cap=0,
        registrar=b"",
        policy="open",
        expiry_ms=expiry_ms,
    )
    # A transfer of the voucher is admitted only once its issue is final.
    submit_and_wait(cluster, [issue], nodes=range(1))
    transfers: list[Body] = [
        Transfer(VOUCHER, resident, amount) for resident, amount in zip(residents, AMOUNTS, strict=True)
    ]
    submit_and_wait(cluster, transfers, nodes=range(4))

    cluster.kill(LATE)
    # Down before the expiry: its store holds the residents' vouchers, not yet lapsed.
    with Store(cluster.data_dir(LATE)) as store:
        assert store.head.timestamp_ms < expiry_ms, "the machine was too slow to stop the node before the expiry"
        assert [store.load_balance(resident, VOUCHER) for resident in residents] == list(AMOUNTS)
        assert store.load_asset_state(VOUCHER) == AssetState(supply=SUPPLY, holders=len(AMOUNTS) + 1)
        stopped_at = store.height

    live = [index for index in range(4) if index != LATE]
    for index in live:
        wait_for(lambda index=index: head_block(cluster, index)["timestamp_ms"] > expiry_ms,
                 f"node {index}'s final head to pass the expiry", timeout=EXPIRY_AHEAD_MS / 1000 + 30)
    target = max(cluster.height(index) for index in live)
    assert target > stopped_at

    cluster.start(LATE)
    wait_for(lambda: cluster.height(LATE) >= target, f"node {LATE} to catch up to height {target}")
    heads = [cluster.call(index, "chain_getBlock", target) for index in range(4)]
    assert len({(head["hash"], head["state_root"]) for head in heads}) == 1, heads
    cluster.close()

    states = []
    for index in range(4):
        with Store(cluster.data_dir(index)) as store:
            assert store.recompute_lattice().root() == store.head.state_root
            assert store.load_block(target).hash.hex() == heads[0]["hash"].removeprefix("0x")  # type: ignore[union-attr]
            states.append(voucher_state(store, residents, treasury))
    lapsed = sum(AMOUNTS)
    assert states[LATE] == {
        "asset_state": AssetState(supply=SUPPLY, holders=1, expired=True, lapsed=lapsed, lapse_complete=True),
        "lapse_height": states[0]["lapse_height"],
        "balances": [0] * len(AMOUNTS),
        "treasury": SUPPLY,
        "balances_before": list(AMOUNTS),
        "balances_at": [0] * len(AMOUNTS),
    }
    assert states[LATE]["lapse_height"] > stopped_at, "the lapse fell before the node stopped: it replayed none"
    assert all(state == states[LATE] for state in states), states
