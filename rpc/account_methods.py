"""The ``account_*`` methods: an account's nonce, roles and balances per asset, its balances
after any past block, and the transactions that named it, newest first.

They read only final data, through ``NodeView`` (``account_get`` adds what this node's
mempool holds pending). A named asset no issue created is ``UNKNOWN_ASSET``; a height above
the head is ``BLOCK_NOT_FOUND``. Lists come in pages with a ``next_cursor`` (see ``params``).
"""

from __future__ import annotations

from typing import Any

from mura.chain.address import encode_address
from mura.chain.assets import AssetTerms
from mura.rpc.asset_methods import known_asset
from mura.rpc.chain_methods import final_height
from mura.rpc.declarations import Method, Param, Result
from mura.rpc.errors import BLOCK_NOT_FOUND, NOT_KEPT, UNKNOWN_ASSET, InvalidParams
from mura.rpc.finality import FinalLocation
from mura.rpc.node_view import ChainReader, NodeView
from mura.rpc.params import (
    ASSET,
    address_type,
    check_asset_cursor,
    check_transaction_cursor,
    cursor_param,
    height_param,
    limit_param,
    transaction_cursor,
)
from mura.rpc.render import (
    ACCOUNT_SCHEMA,
    BALANCE_SCHEMA,
    TRANSACTION_SCHEMA,
    render_account,
    render_balances,
    render_transaction,
)

#: Transactions per page when the call gives no limit, and at most: each one's block is
#: read whole to render it, so a page is bounded more tightly than other lists.
DEFAULT_TRANSACTIONS_PAGE = 20
MAX_TRANSACTIONS_PAGE = 100

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_ADDRESS: dict[str, Any] = {"type": "string", "description": "The account's text address."}
_NEXT_CURSOR: dict[str, Any] = {
    "type": ["string", "null"],
    "description": "Pass it as cursor for the next page; null on the last page.",
}

BALANCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["address", "height", "balances", "next_cursor"],
    "properties": {
        "address": _ADDRESS,
        "height": {**_COUNT, "description": "The balances are those after the block at this height."},
        "balances": {"type": "array", "items": BALANCE_SCHEMA, "description": "Positive balances, by asset id."},
        "next_cursor": _NEXT_CURSOR,
    },
}

HISTORY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["address", "transactions", "next_cursor"],
    "properties": {
        "address": _ADDRESS,
        "transactions": {
            "type": "array",
            "items": TRANSACTION_SCHEMA,
            "description": "Final transactions the account sent or was named in (as recipient or the account a "
            "registrar acted on), newest first, each as chain_getTransaction shows it.",
        },
        "next_cursor": _NEXT_CURSOR,
    },
}


#: Balances ``account_get`` shows: what a wallet lists at once (``account_getBalances`` pages the rest).
ACCOUNT_BALANCES = 100


def balances_page(
    store: ChainReader, address: bytes, height: int, after: str | None, limit: int
) -> tuple[list[tuple[AssetTerms, int]], str | None]:
    """Up to ``limit`` positive balances of ``address`` after the block at ``height``, by asset
    id after ``after``, and the cursor of the next page (None if there is none). Every asset
    the account ever held is looked at, at most ``2 * limit`` per page (anyone may send an
    account dust of many assets): a page may hold fewer than ``limit``, even none."""
    found: list[tuple[AssetTerms, int]] = []
    held = store.load_held_assets(address, after=after or "", limit=2 * limit + 1)
    for position, asset in enumerate(held):
        if len(found) == limit or position == 2 * limit:
            return found, held[position - 1]
        balance = store.load_balance_at(address, asset, height)
        if balance:
            found.append((known_asset(store, asset), balance))
    return found, None


class AccountMethods:
    """The ``account_*`` handlers, reading through one ``NodeView``."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    def _asset_or_default(self, asset: str | None) -> AssetTerms:
        """The named asset, or the network's default; a call naming neither on a network without
        a default is invalid params."""
        if asset is None:
            asset = self._node.chain_info.default_asset
            if asset is None:
                raise InvalidParams("this network has no default asset: name one (asset_list lists them)",
                                    param="asset")
        return known_asset(self._node.store, asset)

    async def get_balance(self, address: bytes, asset: str | None) -> int:
        """The final balance of one asset (0 if the account holds none of it)."""
        terms = self._asset_or_default(asset)
        return self._node.store.load_balance(address, terms.asset)

    async def get_account(self, address: bytes) -> dict[str, Any]:
        """Nonce, roles and balances, with the nonce a new transaction should carry."""
        store = self._node.store
        balances, more = balances_page(store, address, store.height, None, ACCOUNT_BALANCES)
        pending = [transaction.nonce for transaction in self._node.mempool.pending_for(address)]
        account = store.load_account(address)
        return render_account(address, account, balances, pending, self._node.address_prefix, more_balances=bool(more))

    async def get_balances(
        self, address: bytes, height: int | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """A page of the account's positive balances after the block at ``height``."""
        store = self._node.store
        at = final_height(store, height)
        balances, next_cursor = balances_page(store, address, at, cursor, limit)
        return {
            "address": self._address(address),
            "height": at,
            "balances": render_balances(balances),
            "next_cursor": next_cursor,
        }

    async def get_transactions(
        self, address: bytes, cursor: tuple[int, int] | None, limit: int
    ) -> dict[str, Any]:
        """A page of the final transactions naming the account, newest first."""
        store = self._node.store
        # One more than the page: whether it exists says whether there is a next page.
        found = store.load_account_transactions(address, before=cursor, limit=limit + 1)
        page = found[:limit]
        transactions = []
        for height, index, transaction_hash in page:
            # One transaction read per entry, never its whole block: a page may span a hundred blocks.
            entry = store.load_transaction_at(height, index)
            assert entry is not None, f"the store indexes a transaction in block {height}, which it lacks"
            transaction, block_hash = entry
            assert transaction.hash == transaction_hash, f"the account index disagrees with block {height}"
            location = FinalLocation(height, index, block_hash)
            transactions.append(render_transaction(transaction, self._node.address_prefix, location))
        return {
            "address": self._address(address),
            "transactions": transactions,
            "next_cursor": transaction_cursor(*page[-1][:2]) if len(found) > limit else None,
        }

    def _address(self, public_key: bytes) -> str:
        return encode_address(public_key, self._node.address_prefix)

    def declarations(self) -> list[Method]:
        """The ``account_*`` methods, declared for the engine and for ``rpc.discover``."""
        address = Param(
            "address", address_type(self._node.address_prefix), "The account's text address, e.g. tnac1..."
        )
        mistyped = "A mistyped address (wrong prefix, character or checksum) is invalid params (-32602)."
        return [
            Method(
                name="account_getBalance",
                handler=self.get_balance,
                summary="The final balance of an account in one asset, in its smallest units.",
                params=(
                    address,
                    Param("asset", ASSET, "The asset's id; the network's default asset when absent.", required=False),
                ),
                result=Result("balance", _COUNT, "Smallest units; 0 for an account that holds none."),
                errors=(UNKNOWN_ASSET,),
                description=f"{mistyped} Without an asset on a network with no default asset, invalid params "
                "naming asset; a well-formed asset id no issue created is -32024.",
            ),
            Method(
                name="account_get",
                handler=self.get_account,
                summary="An account's nonce, roles and final balances per asset, and the nonce to sign with next.",
                params=(address,),
                result=Result(
                    "account", ACCOUNT_SCHEMA, "The account; an unknown one has nonce 0, no roles, no balances."
                ),
                description="next_nonce counts past this node's pending transactions from the account, so "
                "a wallet can send several in a row before the first is final. " + mistyped,
            ),
            Method(
                name="account_getBalances",
                handler=self.get_balances,
                summary="An account's positive balances by asset, now or after a past block, a page at a time.",
                params=(
                    address,
                    height_param("The balances after the block at this height; the head's when absent."),
                    cursor_param(check_asset_cursor, "an asset id"),
                    limit_param(),
                ),
                result=Result("balances", BALANCES_SCHEMA, "A page of balances, each with its asset's decimals."),
                errors=(BLOCK_NOT_FOUND, NOT_KEPT),
                description="A height above the head is -32020 with the head in data. " + mistyped,
            ),
            Method(
                name="account_getTransactions",
                handler=self.get_transactions,
                summary="The final transactions an account sent or was named in, newest first, a page at a time.",
                params=(
                    address,
                    cursor_param(check_transaction_cursor, "HEIGHT:INDEX"),
                    limit_param(default=DEFAULT_TRANSACTIONS_PAGE, maximum=MAX_TRANSACTIONS_PAGE),
                ),
                result=Result("history", HISTORY_SCHEMA, "A page of transactions and the cursor of the next."),
                description="Each transaction is rendered as chain_getTransaction renders it, with its block "
                "height, block hash and index. " + mistyped,
            ),
        ]
