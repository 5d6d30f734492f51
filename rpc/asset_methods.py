"""The ``asset_*`` methods: every asset issued, one asset's terms and state, and its holders
now or after any past block.

They read only final data, through ``NodeView``. An asset id that no issue created is
``UNKNOWN_ASSET``; a height above the head is ``BLOCK_NOT_FOUND``, as for a block. Lists
come in pages of at most ``limit`` items with a ``next_cursor`` (see ``params``).
"""

from __future__ import annotations

from typing import Any

from mura.chain.address import encode_address
from mura.chain.assets import AssetTerms
from mura.rpc.chain_methods import final_height
from mura.rpc.declarations import Method, Param, Result
from mura.rpc.errors import BLOCK_NOT_FOUND, NOT_KEPT, UNKNOWN_ASSET
from mura.rpc.node_view import ChainReader, NodeView
from mura.rpc.params import ASSET, address_cursor, check_asset_cursor, cursor_param, height_param, limit_param
from mura.rpc.render import ASSET_SCHEMA, ASSET_SUMMARY_SCHEMA, render_asset, render_asset_summary

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_NEXT_CURSOR: dict[str, Any] = {
    "type": ["string", "null"],
    "description": "Pass it as cursor for the next page; null on the last page.",
}

ASSET_PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["assets", "next_cursor"],
    "properties": {
        "assets": {"type": "array", "items": ASSET_SUMMARY_SCHEMA, "description": "Assets by id."},
        "next_cursor": _NEXT_CURSOR,
    },
}

HOLDERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["asset", "height", "holders", "next_cursor"],
    "properties": {
        "asset": {"type": "string"},
        "height": {**_COUNT, "description": "The balances are those after the block at this height."},
        "holders": {
            "type": "array",
            "description": "Accounts with a positive balance, in account order; fewer than the limit (even none) "
            "does not mean the last page: next_cursor says.",
            "items": {
                "type": "object",
                "required": ["address", "balance"],
                "properties": {"address": {"type": "string"}, "balance": {**_COUNT, "description": "Smallest units."}},
            },
        },
        "next_cursor": _NEXT_CURSOR,
    },
}


def known_asset(store: ChainReader, asset: str) -> AssetTerms:
    """The terms of an issued asset; ``UNKNOWN_ASSET`` for any other id."""
    terms = store.load_asset(asset)
    if terms is None:
        raise UNKNOWN_ASSET.error({"asset": asset})
    return terms


class AssetMethods:
    """The ``asset_*`` handlers, reading through one ``NodeView``."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    async def list_assets(self, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of every asset issued, by id, after the asset ``cursor`` names."""
        store = self._node.store
        later = store.load_assets(after=cursor or "", limit=limit + 1)
        page = later[:limit]
        prefix = self._node.address_prefix
        return {
            "assets": [render_asset_summary(terms, store.load_asset_state(terms.asset), prefix) for terms in page],
            "next_cursor": page[-1].asset if len(later) > limit else None,
        }

    async def get_asset(self, asset: str) -> dict[str, Any]:
        """An asset's terms and state."""
        store = self._node.store
        terms = known_asset(store, asset)
        return render_asset(terms, store.load_asset_state(asset), self._node.address_prefix)

    async def get_holders(self, asset: str, height: int | None, cursor: bytes | None, limit: int) -> dict[str, Any]:
        """A page of an asset's holders after the block at ``height``, in account order."""
        store = self._node.store
        known_asset(store, asset)
        at = final_height(store, height)
        page = store.load_holders_at(asset, at, cursor or b"", limit)
        prefix = self._node.address_prefix
        return {
            "asset": asset,
            "height": at,
            "holders": [
                {"address": encode_address(address, prefix), "balance": balance} for address, balance in page.holders
            ],
            "next_cursor": None if page.next_after is None else encode_address(page.next_after, prefix),
        }

    def declarations(self) -> list[Method]:
        """The ``asset_*`` methods, declared for the engine and for ``rpc.discover``."""
        asset = Param("asset", ASSET, "The asset's id, e.g. NAC.")
        return [
            Method(
                name="asset_list",
                handler=self.list_assets,
                summary="Every asset issued, by id, with its issuer, policy, supply and holders, a page at a time.",
                params=(cursor_param(check_asset_cursor, "an asset id"), limit_param()),
                result=Result("assets", ASSET_PAGE_SCHEMA, "A page of assets and the cursor of the next."),
                description="A cursor that is not an asset id is invalid params (-32602).",
            ),
            Method(
                name="asset_get",
                handler=self.get_asset,
                summary="An asset's terms (issuer, registrar, decimals, cap, policy, expiry) and state "
                "(supply, holders, expiry and lapse).",
                params=(asset,),
                result=Result("asset", ASSET_SCHEMA, "The asset's terms and final state."),
                errors=(UNKNOWN_ASSET,),
                description="An id that is not 1 to 32 uppercase letters, digits and single hyphens, starting "
                "with a letter, is invalid params (-32602); a well-formed id no issue created is -32024.",
            ),
            Method(
                name="asset_getHolders",
                handler=self.get_holders,
                summary="The accounts holding an asset and their balances, now or after a past block, in "
                "account order, a page at a time.",
                params=(
                    asset,
                    height_param("The holders after the block at this height; the head's when absent."),
                    cursor_param(address_cursor(self._node.address_prefix), "an address"),
                    limit_param(),
                ),
                result=Result("holders", HOLDERS_SCHEMA, "A page of holders and the cursor of the next."),
                errors=(UNKNOWN_ASSET, BLOCK_NOT_FOUND, NOT_KEPT),
                description="A height above the head is -32020 with the head in data. Go on until next_cursor "
                "is null: a page may hold fewer holders than the limit, even none, before the last (at a past "
                "height every account that ever held the asset is looked at, at most twice the limit per page, "
                "and those whose balance was zero then are skipped). Pass the first page's height to the next "
                "pages to read every page at one height.",
            ),
        ]
