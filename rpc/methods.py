"""Every method the node serves: the ``chain_*`` methods (``chain_methods``), the
``account_*`` methods (``account_methods``), the ``asset_*`` methods (``asset_methods``),
the ``bond_*`` and ``offering_*`` methods (``bond_methods``), the ``governance_*`` methods
(``governance_methods``), and here ``tx_submit``,
``tx_wait`` and ``mempool_status``.

They reach the node only through ``NodeView`` (``node_view``). Bytes travel as
``0x``-prefixed lowercase hex, accounts as text addresses with the network's
prefix, amounts as JSON integers in their asset's smallest unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from mura.chain.address import encode_address
from mura.chain.drops import Dropped
from mura.chain.errors import Invalid, MempoolRejection
from mura.chain.keys import PUBLIC_KEY_SIZE
from mura.chain.transaction import Transaction
from mura.rpc.account_methods import AccountMethods
from mura.rpc.asset_methods import AssetMethods
from mura.rpc.bond_methods import BondMethods
from mura.rpc.chain_methods import ChainMethods
from mura.rpc.declarations import Method, Param, Result, number
from mura.rpc.errors import (
    MEMPOOL_REFUSED,
    NODE_STOPPING,
    SERVER_BUSY,
    TRANSACTION_DROPPED,
    TRANSACTION_REFUSED,
    WAIT_TIMED_OUT,
    dropped_data,
    invalid_data,
)
from mura.rpc.finality import WatchClosed
from mura.rpc.governance_methods import GovernanceMethods
from mura.rpc.node_view import NodeView
from mura.rpc.params import HASH, HASH_SCHEMA, TRANSACTION_HEX, to_hex
from mura.rpc.render import TRANSACTION_SCHEMA, render_transaction

#: What the OpenRPC document says of the whole API.
API_DESCRIPTION = (
    "JSON-RPC 2.0 of a Mura node. Bytes are 0x hex, accounts text addresses with the network's prefix "
    "(chain_status gives it), amounts JSON integers in their asset's smallest unit: above 2^53 a JavaScript "
    "Number loses digits, so parse with a big-integer-aware JSON reader there. Besides each method's "
    "application errors (-32000..-32099, each with data saying why), any call may be answered with the "
    "standard errors -32700 parse error, -32600 invalid request (also a body or batch over the limits, or "
    "a body too slow to arrive), -32601 method not found, -32602 invalid params (data names the param and "
    "the reason) and -32603 internal error. The same methods are served over a websocket at /ws, the only "
    "place chain_subscribe (every final block, as it becomes final) can be called."
)
#: The longest ``tx_wait`` may wait unless the node is configured otherwise.
DEFAULT_MAX_WAIT_SECONDS = 60.0
#: How long ``tx_wait`` waits when the call does not say.
DEFAULT_WAIT_SECONDS = 10.0

_COUNT = {"type": "integer", "minimum": 0}
_MEMPOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["transactions", "bytes", "senders", "max_transactions", "max_bytes", "max_nonce_gap",
                 "max_per_sender"],
    "properties": {
        "transactions": {**_COUNT, "description": "Transactions pending."},
        "bytes": {**_COUNT, "description": "Total size of their encodings."},
        "senders": {**_COUNT, "description": "Accounts with at least one pending transaction."},
        "max_transactions": {**_COUNT, "description": "Most transactions the pool holds."},
        "max_bytes": {**_COUNT, "description": "Most encoded bytes the pool holds."},
        "max_nonce_gap": {**_COUNT, "description": "Furthest a nonce may reach past its sender's next nonce."},
        "max_per_sender": {**_COUNT, "description": "Most transactions pending from one sender."},
    },
}


class NodeMethods:
    """The transaction and mempool handlers, and every other family of methods, reading and
    writing through one ``NodeView``."""

    def __init__(self, node: NodeView, *, max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS) -> None:
        if max_wait_seconds <= 0:
            raise ValueError("max_wait_seconds must be positive")
        self._node = node
        self._chain = ChainMethods(node)
        self._accounts = AccountMethods(node)
        self._assets = AssetMethods(node)
        self._bonds = BondMethods(node)
        self._governance = GovernanceMethods(node)
        self._max_wait_seconds = max_wait_seconds

    async def submit_transaction(self, transaction: Transaction) -> str:
        """Hand a decoded transaction to the node; its hash, or the rule that refused it."""
        try:
            transaction_hash = await self._node.submit_transaction(transaction)
        except MempoolRejection as error:
            raise MEMPOOL_REFUSED.error(self._refusal_data(error)) from None
        except Invalid as error:
            raise TRANSACTION_REFUSED.error(self._refusal_data(error)) from None
        return to_hex(transaction_hash)

    def _refusal_data(self, error: Invalid) -> dict[str, Any]:
        """The rule's facts; an account a rule names by its public key (hex) gets its address too."""
        data = invalid_data(error)
        account = error.details.get("account")
        if isinstance(account, str) and len(account) == 2 * PUBLIC_KEY_SIZE:
            with contextlib.suppress(ValueError):  # not hex after all: the facts stay as they are
                data["address"] = encode_address(bytes.fromhex(account), self._node.address_prefix)
        return data

    async def wait_for_transaction(self, transaction_hash: bytes, timeout_seconds: float) -> dict[str, Any]:
        """The transaction once final; waits for the node's commit notice, at most ``timeout_seconds``.
        A transaction this node dropped (before or while the call waits) is ``TRANSACTION_DROPPED``."""
        # No await between these checks and registering the wait: no commit or drop can fall in between.
        found = self._chain.find_transaction(transaction_hash)
        if found is None:
            dropped = self._node.mempool.dropped(transaction_hash)
            if dropped is not None:
                raise TRANSACTION_DROPPED.error(dropped_data(dropped))
            try:
                location = await self._node.finality.wait(transaction_hash, timeout_seconds)
            except WatchClosed:
                raise NODE_STOPPING.error({"reason": "the node stopped while the call waited"}) from None
            if isinstance(location, Dropped):
                raise TRANSACTION_DROPPED.error(dropped_data(location))
            if location is None:
                raise WAIT_TIMED_OUT.error(
                    {
                        "transaction_hash": to_hex(transaction_hash),
                        "timeout_seconds": timeout_seconds,
                        "pending": transaction_hash in self._node.mempool,
                    }
                )
            found = self._chain.find_transaction(transaction_hash)
            assert found is not None, "a committed transaction is not in the store"
        transaction, location = found
        return render_transaction(transaction, self._node.address_prefix, location)

    async def mempool_status(self) -> dict[str, Any]:
        return dataclasses.asdict(self._node.mempool.status())

    def declarations(self) -> list[Method]:
        """Every method, declared for the engine and for ``rpc.discover``."""
        default_wait = min(DEFAULT_WAIT_SECONDS, self._max_wait_seconds)
        timeout = Param(
            "timeout_seconds",
            number(above=0, maximum=self._max_wait_seconds),
            f"How long to wait, in seconds; at most {self._max_wait_seconds:g}.",
            required=False,
            default=default_wait,
        )
        return [
            *self._chain.declarations(),
            *self._accounts.declarations(),
            *self._assets.declarations(),
            *self._bonds.declarations(),
            *self._governance.declarations(),
            Method(
                name="tx_submit",
                handler=self.submit_transaction,
                charged=False,
                summary="Submit a signed transaction to the mempool; it is gossiped to the validators.",
                params=(Param("raw_transaction_hex", TRANSACTION_HEX, "The signed transaction's encoding in hex."),),
                result=Result("transaction_hash", HASH_SCHEMA, "The transaction's hash, 0x-prefixed hex."),
                errors=(TRANSACTION_REFUSED, MEMPOOL_REFUSED),
                description="Malformed hex or bytes are invalid params (-32602) with the decoding error; "
                "a transaction that breaks a rule is refused with the rule and its facts in data (e.g. "
                "{rule: 'account_frozen', asset: 'NAC', party: 'recipient', account: <public key hex>, "
                "address: <its address>}).",
            ),
            Method(
                name="tx_wait",
                handler=self.wait_for_transaction,
                summary="Wait until a transaction is final, or a timeout passes; then return it.",
                params=(Param("transaction_hash", HASH, "The transaction's hash, as tx_submit returned it."), timeout),
                result=Result("transaction", TRANSACTION_SCHEMA, "The final transaction, as chain_getTransaction."),
                errors=(WAIT_TIMED_OUT, TRANSACTION_DROPPED, SERVER_BUSY, NODE_STOPPING),
                description="Answers at once for a final transaction, and for one this node dropped from its "
                "mempool (-32023 with the rule and the reason); a call waiting when the node drops its "
                "transaction is answered so at once. A timeout above the ceiling is invalid "
                "params (-32602) naming the maximum. The call holds its HTTP request open while it waits, "
                "counted against the server's limit of waiting calls rather than of requests in flight; "
                "past it the call is server busy (-32000) with data limit 'max_waiting'.",
                waits=True,
            ),
            Method(
                name="mempool_status",
                handler=self.mempool_status,
                summary="How many transactions and bytes wait in the mempool, and its limits.",
                result=Result("mempool", _MEMPOOL_SCHEMA, "The pool's fill and limits."),
            ),
        ]


def node_methods(node: NodeView, *, max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS) -> list[Method]:
    """Every method the node serves, reading and writing through ``node``."""
    return NodeMethods(node, max_wait_seconds=max_wait_seconds).declarations()
