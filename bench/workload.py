"""Benchmark accounts, their funding, and transactions signed ahead of time.

Accounts are derived from a seed and funded in two rounds (an issuer to hubs,
hubs to accounts), so that no sender queues more than ``FAN_OUT`` transactions
at once. The plain workload moves the testnet's coin (NAC, the treasury's). The
mixed one moves three assets in turn: NAC, the partner bank's yen token (JPYT),
and ``RESTRICTED``, which the treasury issues at its start (``mixed_setup``),
approving every hub and account as a holder before funding them with it.
Transactions are signed nonce-major (every account's next nonce, then the next
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
from mura.chain.transaction import ApproveHolder, Body, IssueAsset, Transfer, sign_transaction
from mura.genesis.testnet import JPYT, NAC

#: Transfers one sender funds per round. A node admits the calls of a JSON-RPC batch side
#: by side, so one sender's nonces in a batch must stay within the mempool's window of 64.
FAN_OUT = 60
#: Most accounts two funding rounds can reach.
MAX_ACCOUNTS = FAN_OUT * FAN_OUT
#: The asset of the plain workload: the testnet's coin, issued by the treasury.
COIN = str(NAC["id"])
#: The partner bank's yen token.
YEN = str(JPYT["id"])
#: The restricted asset the treasury issues for the mixed workload.
RESTRICTED = "BENCH-BOND"
RESTRICTED_SUPPLY = 10**12
#: The mixed workload's assets, taken in turn.
MIXED_ASSETS = (COIN, YEN, RESTRICTED)
#: Approvals per round: a sender has at most 1,000 transactions pending in a node's pool.
#: (Sent in batches of ``FAN_OUT``: the window of 64 nonces holds within each.)
APPROVALS_PER_ROUND = 500


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A signed transaction ready to submit."""

    #: Its hash as the RPC shows it: ``0x`` and 64 hex digits.
    hash: str
    #: Its encoding in hex, as ``tx_submit`` takes it.
    raw: str
    #: Index of the validator it is submitted to.
    node: int


@dataclass(frozen=True, slots=True)
class BatchFile:
    """A load file: one JSON-RPC batch per line, and which transactions each line carries."""

    path: Path
    #: For each line, the indices (into the phase's transactions) of its transactions.
    members: list[list[int]]


def derived_key(seed: int, label: str, index: int) -> SigningKey:
    return SigningKey.from_private_bytes(sha256(f"mura-bench/{seed}/{label}/{index}".encode()))


class Workload:
    """The benchmark's senders, every signer's next nonce, and a source of recipients."""

    def __init__(self, *, chain_id: str, accounts: int, nodes: int, seed: int = 0) -> None:
        if not 2 <= accounts <= MAX_ACCOUNTS:
            raise ValueError(f"accounts must be from 2 to {MAX_ACCOUNTS}, got {accounts}")
        self.chain_id = chain_id
        self.nodes = nodes
        self.keys = [derived_key(seed, "account", index) for index in range(accounts)]
        self.hubs = [derived_key(seed, "hub", index) for index in range(-(-accounts // FAN_OUT))]
        #: The next nonce of every key this workload signed with.
        self.nonces: dict[bytes, int] = {}
        self._chooser = random.Random(seed)

    def _sign(self, key: SigningKey, body: Body, node: int) -> SignedTransaction:
        """``body`` signed by ``key`` at its next nonce."""
        nonce = self.nonces.get(key.public_key, 0)
        self.nonces[key.public_key] = nonce + 1
        transaction = sign_transaction(key, chain_id=self.chain_id, nonce=nonce, body=body)
        return SignedTransaction("0x" + transaction.hash.hex(), transaction.encoded.hex(), node)

    def funding_rounds(
        self, funder: SigningKey, *, amount_each: int, asset: str = COIN
    ) -> list[list[SignedTransaction]]:
        """``funder`` to hubs, then hubs to accounts, in ``asset``: submit a round, wait until
        final, then the next."""
        to_hubs = []
        to_accounts = []
        for hub_index, hub in enumerate(self.hubs):
            share = self.keys[hub_index * FAN_OUT : (hub_index + 1) * FAN_OUT]
            to_hubs.append(self._sign(funder, Transfer(asset, hub.public_key, amount_each * len(share)), 0))
            for account in share:
                body = Transfer(asset, account.public_key, amount_each)
                to_accounts.append(self._sign(hub, body, hub_index % self.nodes))
        return [to_hubs, to_accounts]

    def mixed_setup(
        self, treasury: SigningKey, bank: SigningKey, *, yen_each: int
    ) -> list[list[SignedTransaction]]:
        """Rounds that ready the mixed workload on top of the plain one's funding: the
        treasury issues ``RESTRICTED`` and the bank funds everyone with JPYT; the treasury
        approves every hub and account as a holder of ``RESTRICTED``, then funds them
        with it. Each round needs the one before it final: an approval the asset's issue,
        a restricted transfer its recipient's approval."""
        # Signed in the order each sender submits them: nonces follow.
        issue = IssueAsset(RESTRICTED, "Bench Forest Bond", 0, RESTRICTED_SUPPLY, False, 0, b"", "restricted", 0)
        issued = self._sign(treasury, issue, 0)
        yen_to_hubs, yen_to_accounts = self.funding_rounds(bank, amount_each=yen_each, asset=YEN)
        holders = [key.public_key for key in (*self.hubs, *self.keys)]
        approvals = [self._sign(treasury, ApproveHolder(RESTRICTED, holder), 0) for holder in holders]
        step = APPROVALS_PER_ROUND
        chunks = [approvals[start : start + step] for start in range(0, len(approvals), step)]
        rounds = [[issued, *yen_to_hubs], [*yen_to_accounts, *chunks[0]], *chunks[1:]]
        restricted_each = RESTRICTED_SUPPLY * 9 // 10 // len(self.keys)
        return rounds + self.funding_rounds(treasury, amount_each=restricted_each, asset=RESTRICTED)

    def sign_transfers(self, count: int, *, assets: Sequence[str] = (COIN,)) -> list[SignedTransaction]:
        """``count`` transfers of one unit to other benchmark accounts, nonce-major; the
        ``i``-th in ``assets[i % len(assets)]``."""
        accounts = len(self.keys)
        transfers = []
        for index in range(count):
            sender = index % accounts
            recipient = (sender + 1 + self._chooser.randrange(accounts - 1)) % accounts
            body = Transfer(assets[index % len(assets)], self.keys[recipient].public_key, 1)
            transfers.append(self._sign(self.keys[sender], body, sender % self.nodes))
        return transfers


def submit_request(index: int, raw: str) -> str:
    """One ``tx_submit`` request as JSON text; ``index`` is its id."""
    return f'{{"jsonrpc":"2.0","id":{index},"method":"tx_submit","params":["{raw}"]}}'


def write_batch_file(
    path: Path, transfers: Sequence[SignedTransaction], *, nodes: int, batch_size: int
) -> BatchFile:
    """Write ``node<TAB>count<TAB>batch body`` lines, taking the nodes in turn.

    Each node's transactions stay in signing order and are cut into batches of
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
