"""Benchmark accounts, their funding from the treasury, and transfers signed ahead of time.

Accounts are derived from a seed, funded in two rounds (treasury to hubs, hubs
to accounts) because the mempool holds at most 64 pending nonces per sender.
Transfers are signed nonce-major (every account's next nonce, then the next
round), so an account's nonces reach the pool in order and far apart, and each
account always submits through the same validator, as a wallet would.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mura.chain.keys import SigningKey, sha256
from mura.chain.transaction import Transfer, sign_transaction

#: Transfers one sender funds per round; the mempool admits at most 64 nonces ahead.
FAN_OUT = 60
#: Most accounts two funding rounds can reach.
MAX_ACCOUNTS = FAN_OUT * FAN_OUT


@dataclass(frozen=True, slots=True)
class SignedTransfer:
    """A signed transaction ready to submit."""

    #: Its hash as the RPC shows it: ``0x`` and 64 hex digits.
    hash: str
    #: Its encoding in hex, as ``tx_submit`` takes it.
    raw: str
    #: Index of the validator it is submitted to.
    node: int


@dataclass(frozen=True, slots=True)
class BatchFile:
    """A load file: one JSON-RPC batch per line, and which transfers each line carries."""

    path: Path
    #: For each line, the indices (into the phase's transfers) of its transactions.
    members: list[list[int]]


def derived_key(seed: int, label: str, index: int) -> SigningKey:
    return SigningKey.from_private_bytes(sha256(f"mura-bench/{seed}/{label}/{index}".encode()))


class Workload:
    """The benchmark's senders, their next nonces, and a source of recipients."""

    def __init__(self, *, chain_id: str, accounts: int, nodes: int, seed: int = 0) -> None:
        if not 2 <= accounts <= MAX_ACCOUNTS:
            raise ValueError(f"accounts must be from 2 to {MAX_ACCOUNTS}, got {accounts}")
        self.chain_id = chain_id
        self.nodes = nodes
        self.keys = [derived_key(seed, "account", index) for index in range(accounts)]
        self.hubs = [derived_key(seed, "hub", index) for index in range(-(-accounts // FAN_OUT))]
        self.nonces = [0] * accounts
        self._chooser = random.Random(seed)

    def _sign(self, key: SigningKey, nonce: int, recipient: bytes, amount: int, node: int) -> SignedTransfer:
        transaction = sign_transaction(key, chain_id=self.chain_id, nonce=nonce, body=Transfer(recipient, amount))
        return SignedTransfer("0x" + transaction.hash.hex(), transaction.encoded.hex(), node)

    def funding_rounds(self, treasury: SigningKey, *, amount_each: int) -> list[list[SignedTransfer]]:
        """Treasury to hubs, then hubs to accounts: submit a round, wait until final, then the next."""
        to_hubs = []
        to_accounts = []
        for hub_index, hub in enumerate(self.hubs):
            share = self.keys[hub_index * FAN_OUT : (hub_index + 1) * FAN_OUT]
            to_hubs.append(self._sign(treasury, hub_index, hub.public_key, amount_each * len(share), 0))
            for nonce, account in enumerate(share):
                to_accounts.append(self._sign(hub, nonce, account.public_key, amount_each, hub_index % self.nodes))
        return [to_hubs, to_accounts]

    def sign_transfers(self, count: int) -> list[SignedTransfer]:
        """``count`` transfers of one unit to other benchmark accounts, nonce-major."""
        accounts = len(self.keys)
        transfers = []
        for index in range(count):
            sender = index % accounts
            recipient = (sender + 1 + self._chooser.randrange(accounts - 1)) % accounts
            nonce = self.nonces[sender]
            self.nonces[sender] = nonce + 1
            transfers.append(
                self._sign(self.keys[sender], nonce, self.keys[recipient].public_key, 1, sender % self.nodes)
            )
        return transfers


def submit_request(index: int, raw: str) -> str:
    """One ``tx_submit`` request as JSON text; ``index`` is its id."""
    return f'{{"jsonrpc":"2.0","id":{index},"method":"tx_submit","params":["{raw}"]}}'


def write_batch_file(path: Path, transfers: Sequence[SignedTransfer], *, nodes: int, batch_size: int) -> BatchFile:
    """Write ``node<TAB>count<TAB>batch body`` lines, taking the nodes in turn.

    Each node's transfers stay in signing order and are cut into batches of
    ``batch_size``; the lines then alternate between nodes, so a paced or
    parallel load spreads evenly over the network.
    """
    streams: list[list[int]] = [[] for _ in range(nodes)]
    for index, transfer in enumerate(transfers):
        streams[transfer.node].append(index)
    per_node = [
        [stream[start : start + batch_size] for start in range(0, len(stream), batch_size)] for stream in streams
    ]
    members: list[list[int]] = []
    with open(path, "w") as file:
        for round_index in range(max((len(batches) for batches in per_node), default=0)):
            for node, batches in enumerate(per_node):
                if round_index >= len(batches):
                    continue
                batch = batches[round_index]
                body = "[" + ",".join(submit_request(index, transfers[index].raw) for index in batch) + "]"
                file.write(f"{node}\t{len(batch)}\t{body}\n")
                members.append(batch)
    return BatchFile(path, members)


def write_addresses(path: Path, addresses: Sequence[str]) -> None:
    """The accounts the query process reads balances of, as a JSON list of text addresses."""
    path.write_text(json.dumps(list(addresses)))
