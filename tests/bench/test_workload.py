"""The benchmark's workload: what it signs can be admitted in the order it is submitted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mura.bench.workload import (
    FAN_OUT,
    MIXED_ASSETS,
    RESTRICTED,
    SignedTransaction,
    Workload,
    derived_key,
    write_batch_file,
)
from mura.chain.transaction import ApproveHolder, IssueAsset, Transaction, Transfer

ACCOUNTS = 130
NODES = 4
#: How far past a sender's next nonce the mempool admits one.
NONCE_WINDOW = 64


def decoded(signed: SignedTransaction) -> Transaction:
    return Transaction.decode(bytes.fromhex(signed.raw))


def setup() -> tuple[Workload, list[list[Transaction]]]:
    workload = Workload(chain_id="bench-test", accounts=ACCOUNTS, nodes=NODES)
    treasury, bank = derived_key(0, "treasury", 0), derived_key(0, "bank", 0)
    rounds = workload.funding_rounds(treasury, amount_each=10)
    rounds += workload.mixed_setup(treasury, bank, yen_each=10)
    return workload, [[decoded(signed) for signed in round_] for round_ in rounds]


def test_each_sender_signs_its_nonces_in_the_order_of_the_rounds() -> None:
    _, rounds = setup()
    expected: Counter[bytes] = Counter()
    for round_ in rounds:
        for transaction in round_:
            assert transaction.nonce == expected[transaction.sender]
            expected[transaction.sender] += 1


def test_the_restricted_asset_is_issued_before_its_holders_are_approved_and_funded() -> None:
    workload, rounds = setup()
    kinds = [{type(transaction.body) for transaction in round_} for round_ in rounds]
    issued = next(index for index, found in enumerate(kinds) if IssueAsset in found)
    approved = [index for index, found in enumerate(kinds) if ApproveHolder in found]
    funded = [
        index
        for index, round_ in enumerate(rounds)
        if any(isinstance(tx.body, Transfer) and tx.body.asset == RESTRICTED for tx in round_)
    ]
    assert issued < min(approved) and max(approved) < min(funded)
    holders = {tx.body.account for round_ in rounds for tx in round_ if isinstance(tx.body, ApproveHolder)}
    assert holders == {key.public_key for key in (*workload.hubs, *workload.keys)}


def test_no_batch_reaches_past_the_mempools_nonce_window(tmp_path: Path) -> None:
    """A node admits the calls of one batch side by side: a sender's nonces in a batch
    must all be within the window of its first."""
    workload = Workload(chain_id="bench-test", accounts=ACCOUNTS, nodes=NODES)
    treasury, bank = derived_key(0, "treasury", 0), derived_key(0, "bank", 0)
    workload.funding_rounds(treasury, amount_each=10)
    for number, round_ in enumerate(workload.mixed_setup(treasury, bank, yen_each=10)):
        path = tmp_path / f"round-{number}.tsv"
        write_batch_file(path, round_, nodes=NODES, batch_size=FAN_OUT)
        for line in path.read_text().splitlines():
            calls = json.loads(line.split("\t")[2])
            nonces: dict[bytes, list[int]] = {}
            for call in calls:
                transaction = Transaction.decode(bytes.fromhex(call["params"][0]))
                nonces.setdefault(transaction.sender, []).append(transaction.nonce)
            assert all(max(found) - min(found) < NONCE_WINDOW for found in nonces.values())


def test_mixed_transfers_take_the_assets_in_turn() -> None:
    workload, _ = setup()
    transfers = [decoded(signed) for signed in workload.sign_transfers(30, assets=MIXED_ASSETS)]
    assets = [transaction.body.asset for transaction in transfers if isinstance(transaction.body, Transfer)]
    assert assets == [MIXED_ASSETS[index % 3] for index in range(30)]
