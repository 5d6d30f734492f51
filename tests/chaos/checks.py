"""Safety checks on the stopped nodes' stores, after a run.

- One chain: every node holds the same block at every height they share.
- Every commit certificate is valid against the genesis validators, for the
  block it sits with.
- Every state is what its blocks say: each store's recomputed state hash is
  its head's state root.
- No transaction reported final moved or vanished: wherever a node said a
  transaction was final (block listings, ``chain_getTransaction``), every store
  has it there, in that block.
- Balances: replaying the transfers the chain holds, in order, on the genesis
  allocations gives exactly every account's balance of every asset and its
  nonce in every store,
  and the chain holds no transaction the run did not sign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mura.chain.block import verify_certificate
from mura.chain.errors import InvalidCertificate
from mura.chain.store import Store
from mura.chain.transaction import Transfer
from mura.genesis.format import Genesis
from mura.tests.chaos.observer import Placement

#: Problems listed in full before the rest are only counted.
SHOWN_PROBLEMS = 20


@dataclass(slots=True)
class SafetyReport:
    """What the checks found."""

    heights: list[int] = field(default_factory=list)
    blocks_checked: int = 0
    certificates_checked: int = 0
    placements_checked: int = 0
    accounts_checked: int = 0
    transactions_in_chain: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append(text)


def check_stores(
    data_dirs: Sequence[Path], genesis: Genesis, placements: Iterable[Placement], signed: Mapping[str, object]
) -> SafetyReport:
    """Open every store (the nodes must be stopped) and run every check."""
    report = SafetyReport()
    stores = [Store(directory) for directory in data_dirs]
    try:
        report.heights = [store.height for store in stores]
        _check_one_chain(stores, genesis, report)
        _check_placements(stores, placements, report)
        _check_balances(stores, genesis, signed, report)
    finally:
        for store in stores:
            store.close()
    return report


def _check_one_chain(stores: Sequence[Store], genesis: Genesis, report: SafetyReport) -> None:
    validators = genesis.validator_keys()
    for node, store in enumerate(stores):
        for height in range(1, store.height + 1):
            block = store.load_block(height)
            certificate = store.load_certificate(height)
            if block is None or certificate is None:
                report.problem(f"node {node} lacks block or certificate {height} below its head")
                continue
            try:
                verify_certificate(certificate, chain_id=genesis.chain_id, height=height, block_hash=block.hash,
                                   validators=validators)
            except InvalidCertificate as error:
                report.problem(f"node {node} height {height}: invalid certificate: {error}")
            report.certificates_checked += 1
        if store.recompute_lattice().root() != store.head.state_root:
            report.problem(f"node {node}: its state does not hash to its head's state root")
    for height in range(1, min(report.heights, default=0) + 1):
        hashes = {store.load_block(height).hash for store in stores}  # type: ignore[union-attr]
        if len(hashes) != 1:
            report.problem(f"nodes disagree at height {height}: {sorted(h.hex()[:16] for h in hashes)}")
        report.blocks_checked += 1


def _check_placements(stores: Sequence[Store], placements: Iterable[Placement], report: SafetyReport) -> None:
    block_hashes: list[dict[int, str]] = [{} for _ in stores]
    for placement in placements:
        report.placements_checked += 1
        transaction = bytes.fromhex(placement.transaction.removeprefix("0x"))
        for node, store in enumerate(stores):
            where = (
                f"node {placement.node} reported {placement.transaction[:18]} final "
                f"at {placement.height}:{placement.index} ({placement.via})"
            )
            location = store.load_transaction_location(transaction)
            if location != (placement.height, placement.index):
                report.problem(f"{where}; node {node} has it at {location}")
                continue
            known = block_hashes[node]
            if placement.height not in known:
                block = store.load_block(placement.height)
                known[placement.height] = "0x" + block.hash.hex() if block is not None else "none"
            if known[placement.height] != placement.block_hash:
                report.problem(
                    f"{where} in block {placement.block_hash[:18]}; node {node} has {known[placement.height][:18]}"
                )


def _check_balances(
    stores: Sequence[Store], genesis: Genesis, signed: Mapping[str, object], report: SafetyReport
) -> None:
    """Replay the chain's transfers (from the first store) on the genesis allocations, asset by asset."""
    balances: dict[tuple[str, bytes], int] = {}
    for asset in genesis.assets:
        for address, amount in asset.allocations:
            pair = (asset.terms.asset, address)
            balances[pair] = balances.get(pair, 0) + amount
    nonces: dict[bytes, int] = {}
    reference = stores[0]
    for height in range(1, reference.height + 1):
        block = reference.load_block(height)
        assert block is not None
        for transaction in block.transactions:
            report.transactions_in_chain += 1
            if "0x" + transaction.hash.hex() not in signed:
                report.problem(f"height {height} holds transaction {transaction.hash.hex()[:16]} the run never signed")
            if not isinstance(transaction.body, Transfer):
                report.problem(f"height {height} holds a {transaction.kind}, the run only sends transfers")
                continue
            if nonces.get(transaction.sender, 0) != transaction.nonce:
                report.problem(
                    f"height {height}: nonce {transaction.nonce} of {transaction.sender.hex()[:16]} out of order"
                )
            nonces[transaction.sender] = transaction.nonce + 1
            body = transaction.body
            sent, received = (body.asset, transaction.sender), (body.asset, body.recipient)
            balances[sent] = balances.get(sent, 0) - body.amount
            balances[received] = balances.get(received, 0) + body.amount
    for node, store in enumerate(stores):
        if store.height != reference.height:
            continue  # its blocks are checked above; the model is of the reference's height
        held = {
            (asset.terms.asset, address): balance
            for asset in genesis.assets
            for address, balance in store.load_holders_after(asset.terms.asset, b"", len(balances) + 1)
        }
        for pair in set(balances) | set(held):
            report.accounts_checked += 1
            expected, found = balances.get(pair, 0), held.get(pair, 0)
            if found != expected:
                report.problem(
                    f"node {node}: account {pair[1].hex()[:16]} holds {found} {pair[0]}, the transfers give {expected}"
                )
        for address, account in store.iterate_accounts():
            if account.nonce != nonces.get(address, 0):
                report.problem(
                    f"node {node}: account {address.hex()[:16]} has nonce {account.nonce}, "
                    f"the transfers give {nonces.get(address, 0)}"
                )
