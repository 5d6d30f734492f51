"""The validator set changing under real node processes: four validators and an observer;
a fifth validator added while transfers flow, one removed, a key rotated, everything
restarted. Links follow each change without a restart, and every node ends on one chain
whose every certificate checks against the set of its height."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mura.chain.governance import AddValidator, Change, RemoveValidator, ReplaceKey
from mura.chain.keys import SigningKey, load_key, save_key
from mura.chain.transaction import Approve, Propose
from mura.tests.node.cluster import Cluster, check_one_chain, wait_for
from mura.tests.node.test_processes import TransactionFlow

pytestmark = pytest.mark.processes

OBSERVER = 4


class Governance:
    """Changes of the validator set, proposed and approved by validators' own transactions,
    submitted through the observer (which forwards them)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.proposals = 0

    def key(self, name: str) -> SigningKey:
        return load_key(self.cluster.directory / "keys" / f"{name}.key")

    def final(self, key: SigningKey, body: Any) -> dict[str, Any]:
        cluster = self.cluster
        submitted = cluster.submit(OBSERVER, cluster.sign(key, body))
        return cluster.call(OBSERVER, "tx_wait", submitted, 30)  # type: ignore[no-any-return]

    def change(self, change: Change, proposer: str, approvers: list[str]) -> int:
        """Propose ``change`` and approve it; returns the height from which it decides."""
        self.final(self.key(proposer), Propose(change))
        self.proposals += 1
        for approver in approvers:
            approved = self.final(self.key(approver), Approve(self.proposals))
        return approved["block_height"] + 2  # type: ignore[no-any-return]


def refused_by(cluster: Cluster, nodes: list[int], key: bytes) -> None:
    """Each of ``nodes`` has closed its link to ``key`` or refused it in a handshake."""
    closed = f"closing the link to peer {key.hex()[:8]}"
    refused = f"key {key.hex()[:16]} is not admitted"
    for index in nodes:
        wait_for(lambda index=index: closed in (log := cluster.log(index)) or refused in log,
                 f"node {index} to refuse {key.hex()[:8]}")


def keys_at(cluster: Cluster, node: int, height: int) -> list[str]:
    return [validator["public_key"] for validator in cluster.call(node, "chain_validators", height)["validators"]]


def signers(cluster: Cluster, node: int, height: int) -> set[str]:
    """The names of the validators whose COMMITs make node ``node``'s certificate of ``height``."""
    return {signature["name"] for signature in cluster.call(node, "chain_getCertificate", height)["signatures"]}


def test_validators_join_leave_and_rotate_keys_while_transfers_flow(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "testnet", validators=4, observers=1)
    governance = Governance(cluster)
    try:
        cluster.start_all()
        names = cluster.names
        with TransactionFlow(cluster, nodes=[0, 1, OBSERVER]) as flow:
            # A fifth validator: its node runs before the change, following without a vote, and
            # is linked and caught up once the change is scheduled; it then signs.
            fifth, fifth_key, fifth_address = cluster.add_validator_node("partner-5")
            cluster.start(fifth)
            wait_for(lambda: "until a governance change adds it" in cluster.log(fifth), "the new node's start line")
            added = governance.change(
                AddValidator(fifth_key.public_key, "partner-5", fifth_address), names[0], [names[1], names[2]]
            )
            assert fifth_key.public_key.hex() in keys_at(cluster, 0, added)[-1]
            wait_for(lambda: cluster.status(fifth)["voting"], "the fifth validator to take part", timeout=60)
            wait_for(lambda: "partner-5" in signers(cluster, fifth, cluster.height(fifth)),
                     "a certificate with the fifth validator's COMMIT")
            assert cluster.status(0)["peers"] == 5  # four validators and the observer
            # One removed: its links are dropped and it follows no more (no one admits it).
            removed = 2
            gone = governance.change(
                RemoveValidator(governance.key(names[removed]).public_key), names[0], [names[1], names[3], "partner-5"]
            )
            wait_for(lambda: cluster.height(0) >= gone, "the removal to take effect")
            wait_for(lambda: cluster.status(removed)["peers"] == 0, "the removed validator's links to drop")
            wait_for(lambda: "no longer in the validator set" in cluster.log(removed), "its line that it left")
            assert not cluster.status(removed)["voting"]
            assert cluster.stop(removed) == 0
            for index in (0, 1, 3, fifth):
                wait_for(lambda index=index: cluster.status(index)["peers"] == 4, f"node {index} to drop node 2")
            refused_by(cluster, [0, 1, 3, fifth, OBSERVER], governance.key(names[removed]).public_key)
        for recipient, amount in flow.sent.items():
            wait_for(lambda recipient=recipient, amount=amount: cluster.balance(OBSERVER, recipient) == amount,
                     "every transfer on the observer")
        # A key rotated: after activation the old key is refused by every peer; restarted with
        # the new key, the validator signs with it.
        rotated = 3
        new_key = SigningKey.generate()
        new_key_file = cluster.directory / "keys" / f"{names[rotated]}-2.key"
        save_key(new_key_file, new_key, label=f"{names[rotated]}-2")
        rotation = ReplaceKey(governance.key(names[rotated]).public_key, new_key.public_key, "")
        active = governance.change(rotation, names[0], [names[1], "partner-5"])
        wait_for(lambda: cluster.height(0) >= active, "the rotation to take effect")
        wait_for(lambda: cluster.status(rotated)["peers"] == 0, "every peer to refuse the old key")
        refused_by(cluster, [0, 1, OBSERVER, fifth], rotation.old_key)
        assert cluster.stop(rotated) == 0
        cluster.start_with(rotated, flags=["--key-file", str(new_key_file)])
        wait_for(lambda: cluster.status(rotated)["voting"], "the rotated validator to take part", timeout=60)
        wait_for(lambda: names[rotated] in signers(cluster, rotated, cluster.height(rotated)),
                 "a certificate with the new key's COMMIT", timeout=60)
        # Everything restarted: the same set, the same links, blocks again.
        running = [0, 1, rotated, OBSERVER, fifth]
        for index in running:
            assert cluster.stop(index) == 0
        for index in running:
            cluster.start_with(index, flags=["--key-file", str(new_key_file)] if index == rotated else [])
        height = wait_for(lambda: max(cluster.height(0), cluster.height(fifth)), "the restarted nodes to answer")
        for index in running:
            wait_for(lambda index=index: cluster.height(index) >= height + 2, f"node {index} to go on after a restart",
                     timeout=60)
        assert cluster.status(OBSERVER)["peers"] == 4
        assert keys_at(cluster, OBSERVER, cluster.height(OBSERVER))[2] == "0x" + new_key.public_key.hex()
    finally:
        cluster.close()
    assert check_one_chain(cluster, [0, 1, rotated, OBSERVER, fifth]) >= height + 2
    check_one_chain(cluster, [0, removed])
