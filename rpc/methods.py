"""Every method the node serves: the ``chain_*`` methods (``chain_methods``), and here
``account_getBalance``, ``account_get``, ``tx_submit``, ``tx_wait`` and ``mempool_status``.

They reach the node only through ``NodeView`` (``node_view``). Bytes travel as
``0x``-prefixed lowercase hex, accounts as text addresses with the network's
prefix, amounts as JSON integers in the token's smallest unit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mura.chain.drops import Dropped
from mura.chain.errors import Invalid, MempoolRejection
from mura.chain.transaction import Transaction
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
from mura.rpc.node_view import NodeView
from mura.rpc.params import HASH, HASH_SCHEMA, TRANSACTION_HEX, address_type, to_hex
from mura.rpc.render import ACCOUNT_SCHEMA, TRANSACTION_SCHEMA, render_account, render_transaction

#: What the OpenRPC document says of the whole API.
API_DESCRIPTION = (
    "JSON-RPC 2.0 of a Mura node. Bytes are 0x hex, accounts text addresses with the network's prefix "
    "(chain_status gives it), amounts JSON integers in the token's smallest unit: above 2^53 a JavaScript "
    "Number loses digits, so parse with a big-integer-aware JSON reader there. Besides each method's "
    "application errors (-32000..-32099, each with data saying why), any call may be answered with the "
    "standard errors -32700 parse error, -32600 invalid request (also a body or batch over the limits, or "
    "a body too slow to arrive), -32601 method not found, -32602 invalid params (data names the param and "
    "the reason) and -32603 internal error."
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
    """The account, transaction and mempool handlers, reading and writing through one ``NodeView``."""

    def __init__(self, node: NodeView, *, max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS) -> None:
        if max_wait_seconds <= 0:
            raise ValueError("max_wait_seconds must be positive")
        self._node = node
        self._chain = ChainMethods(node)
        self._max_wait_seconds = max_wait_seconds

    async def submit_transaction(self, transaction: Transaction) -> str:
        """Hand a decoded transaction to the node; its hash, or the rule that refused it."""
        try:
            transaction_hash = await self._node.submit_transaction(transaction)
        except MempoolRejection as error:
            raise MEMPOOL_REFUSED.error(invalid_data(error)) from None
        except Invalid as error:
            raise TRANSACTION_REFUSED.error(invalid_data(error)) from None
        return to_hex(transaction_hash)

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

    async def get_balance(self, address: bytes) -> int:
        """The final balance of the account with public key ``address`` (0 if unknown)."""
        return self._node.store.load_account(address).balance

    async def get_account(self, address: bytes) -> dict[str, Any]:
        """Balance, nonce and roles, with the nonce a new transaction should carry."""
        account = self._node.store.load_account(address)
        pending = [transaction.nonce for transaction in self._node.mempool.pending_for(address)]
        return render_account(address, account, pending, self._node.address_prefix)

    async def mempool_status(self) -> dict[str, Any]:
        return dataclasses.asdict(self._node.mempool.status())

    def declarations(self) -> list[Method]:
        """Every method, declared for the engine and for ``rpc.discover``."""
        address = Param(
            "address", address_type(self._node.address_prefix), "The account's text address, e.g. tnac1..."
        )
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
            Method(
                name="account_getBalance",
                handler=self.get_balance,
                summary="The final balance of an account, in the smallest unit.",
                params=(address,),
                result=Result("balance", _COUNT, "Smallest units; 0 for an unknown account."),
                description="A mistyped address (wrong prefix, character or checksum) is invalid params (-32602).",
            ),
            Method(
                name="account_get",
                handler=self.get_account,
                summary="An account's final balance, nonce and roles, and the nonce to sign with next.",
                params=(address,),
                result=Result("account", ACCOUNT_SCHEMA, "The account; an unknown one holds 0 with nonce 0."),
                description="next_nonce counts past this node's pending transactions from the account, so "
                "a wallet can send several in a row before the first is final.",
            ),
            Method(
                name="tx_submit",
                handler=self.submit_transaction,
                summary="Submit a signed transaction to the mempool; it is gossiped to the validators.",
                params=(Param("raw_transaction_hex", TRANSACTION_HEX, "The signed transaction's encoding in hex."),),
                result=Result("transaction_hash", HASH_SCHEMA, "The transaction's hash, 0x-prefixed hex."),
                errors=(TRANSACTION_REFUSED, MEMPOOL_REFUSED),
                description="Malformed hex or bytes are invalid params (-32602) with the decoding error; "
                "a transaction that breaks a rule is refused with the rule and its facts in data.",
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
