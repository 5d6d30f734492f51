"""The ``chain_*`` methods: status, blocks, transactions, commit certificates and validators.

They read only final data, through ``NodeView``; a block, transaction or
certificate that is not (yet) there is an application error whose ``data``
says what was asked for and how far the chain reaches, or, for a transaction
this node dropped from its mempool, why it was dropped.
"""

from __future__ import annotations

from typing import Any

from mura.chain.address import encode_address
from mura.chain.block import Block, quorum_size
from mura.chain.governance import ACTIVATION_DELAY, validator_keys
from mura.chain.transaction import Transaction
from mura.rpc.declarations import BOOLEAN, Method, Param, Result
from mura.rpc.errors import (
    BLOCK_NOT_FOUND,
    NO_CERTIFICATE,
    NOT_KEPT,
    TRANSACTION_DROPPED,
    TRANSACTION_NOT_FOUND,
    VALIDATORS_UNKNOWN,
    RpcError,
    dropped_data,
)
from mura.rpc.finality import FinalLocation
from mura.rpc.node_view import ChainReader, NodeView
from mura.rpc.params import BLOCK_ID, HASH, HASH_SCHEMA, HEIGHT, BlockId, to_hex
from mura.rpc.render import (
    BLOCK_SCHEMA,
    CERTIFICATE_SCHEMA,
    TRANSACTION_SCHEMA,
    VALIDATORS_SCHEMA,
    render_block,
    render_certificate,
    render_transaction,
    render_validators,
)

_COUNT = {"type": "integer", "minimum": 0}

#: Assets ``chain_status`` lists: what a wallet needs for a village's few; ``asset_list`` pages the rest.
STATUS_ASSETS = 100

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "chain_id", "address_prefix", "default_asset", "assets", "asset_count", "height", "head_hash", "view",
        "validators", "peers", "validator_peers",
        "syncing", "highest_known_height", "blocks_behind", "role", "voting",
    ],
    "properties": {
        "chain_id": {"type": "string", "description": "The network's name; transactions must carry it."},
        "address_prefix": {"type": "string", "description": "The prefix of this network's addresses."},
        "default_asset": {
            "type": ["string", "null"],
            "description": "The asset methods and commands use when none is named (the genesis's first).",
        },
        "assets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "decimals"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "decimals": _COUNT},
            },
            "description": "The first 100 assets issued, by id (asset_list pages through all of them): decimals 2 "
            "means 100 smallest units make one.",
        },
        "asset_count": {**_COUNT, "description": "How many assets have been issued."},
        "height": {**_COUNT, "description": "Height of the last final block."},
        "head_hash": {**HASH_SCHEMA, "description": "Hash of the last final block."},
        "view": {**_COUNT, "description": "The PBFT view the node is in."},
        "validators": {"type": "array", "items": {"type": "string"}, "description": "Validator addresses, in order."},
        "peers": {**_COUNT, "description": "Peers connected now, observers included."},
        "validator_peers": {
            **_COUNT, "description": "Of peers, validators of the height in progress or the next (/ready counts them).",
        },
        "syncing": {"type": "boolean", "description": "True while the node catches up."},
        "highest_known_height": {**_COUNT, "description": "The highest final height the node knows exists."},
        "blocks_behind": {
            **_COUNT, "description": "highest_known_height minus height: how far behind the validators this node is.",
        },
        "role": {
            "type": "string", "enum": ["validator", "observer"],
            "description": "validator, or observer: a node that follows the chain and never votes.",
        },
        "voting": {
            "type": "boolean",
            "description": "True while this node's key is a validator's of the height in progress; false while it "
            "follows without a vote (an observer, or a validator not yet added or already removed).",
        },
    },
}

_BLOCK_PARAM = Param("block", BLOCK_ID, "The block's height (integer) or hash (0x and 64 hex digits).")


def final_height(store: ChainReader, height: int | None) -> int:
    """The height a history query reads at: ``height``, or the head's when None. A height
    above the head is ``BLOCK_NOT_FOUND``, as for a block."""
    head = store.height
    if height is None:
        return head
    if height > head:
        raise BLOCK_NOT_FOUND.error({"height": height, "head": head})
    if height < store.kept_from:
        raise not_kept(store, height)
    return height


def not_kept(store: ChainReader, height: int) -> RpcError:
    """The answer for a height below the one this node joined at by state sync."""
    kept_from = store.kept_from
    return NOT_KEPT.error({
        "height": height,
        "kept_from": kept_from,
        "reason": f"not kept on this node (joined by state sync at {kept_from})",
    })


class ChainMethods:
    """The ``chain_*`` handlers, reading through one ``NodeView``."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    @property
    def _prefix(self) -> str:
        return self._node.address_prefix

    async def status(self) -> dict[str, Any]:
        """The node's status, with the network's identity a wallet needs to sign."""
        status = self._node.status()
        info = self._node.chain_info
        return {
            "chain_id": info.chain_id,
            "address_prefix": info.address_prefix,
            "default_asset": info.default_asset,
            "assets": [
                {"id": terms.asset, "name": terms.name, "decimals": terms.decimals}
                for terms in self._node.store.load_assets(limit=STATUS_ASSETS)
            ],
            "asset_count": self._node.store.count_assets(),
            "height": status.height,
            "head_hash": to_hex(status.head_hash),
            "view": status.view,
            "validators": [encode_address(validator, self._prefix) for validator in status.validators],
            "peers": status.peers,
            "validator_peers": status.validator_peers,
            "syncing": status.syncing,
            "highest_known_height": status.highest_known_height,
            "blocks_behind": max(0, status.highest_known_height - status.height),
            "role": status.role,
            "voting": status.voting,
        }

    def load_block(self, block_id: BlockId) -> Block:
        """The final block ``block_id`` names, or ``BLOCK_NOT_FOUND``."""
        store = self._node.store
        if block_id.hash is not None:
            block = store.load_block_by_hash(block_id.hash)
        else:
            assert block_id.height is not None
            block = store.load_block(block_id.height)
        if block is None and block_id.height is not None and block_id.height < store.kept_from:
            raise not_kept(store, block_id.height)
        if block is None:
            raise BLOCK_NOT_FOUND.error({**block_id.describe(), "head": store.height})
        return block

    async def get_block(self, block_id: BlockId, full_transactions: bool) -> dict[str, Any]:
        return render_block(self.load_block(block_id), self._prefix, full_transactions=full_transactions)

    def find_transaction(self, transaction_hash: bytes) -> tuple[Transaction, FinalLocation] | None:
        """A final transaction and where it sits, or None."""
        location = self._node.store.load_transaction_location(transaction_hash)
        if location is None:
            return None
        height, index = location
        found = self._node.store.load_transaction_at(height, index)
        assert found is not None, f"the store indexes a transaction in block {height}, which it lacks"
        transaction, block_hash = found
        return transaction, FinalLocation(height, index, block_hash)

    async def get_transaction(self, transaction_hash: bytes) -> dict[str, Any]:
        found = self.find_transaction(transaction_hash)
        if found is None:
            dropped = self._node.mempool.dropped(transaction_hash)
            if dropped is not None:
                raise TRANSACTION_DROPPED.error(dropped_data(dropped))
            raise TRANSACTION_NOT_FOUND.error(
                {"transaction_hash": to_hex(transaction_hash), "pending": transaction_hash in self._node.mempool}
            )
        transaction, location = found
        return render_transaction(transaction, self._prefix, location)

    async def get_certificate(self, block_id: BlockId) -> dict[str, Any]:
        block = self.load_block(block_id)
        certificate = self._node.store.load_certificate(block.height)
        if certificate is None:
            reason = "the genesis block is final by the genesis file, not by votes" if block.height == 0 else (
                "this node holds no certificate for the block"
            )
            raise NO_CERTIFICATE.error({"height": block.height, "reason": reason})
        # A certificate is checked against the set that decided its height.
        validators = self._node.store.load_validators_at(block.height)
        keys = validator_keys(validators)
        names = {record.public_key: record.name for record in validators}
        return render_certificate(certificate, keys, names, self._prefix, quorum_size(len(keys)))

    async def validators(self, height: int | None) -> dict[str, Any]:
        """The set that decides ``height`` (the next height's when None)."""
        store = self._node.store
        known = store.height + ACTIVATION_DELAY
        if height is None:
            height = store.height + 1
        if not 1 <= height <= known:
            raise VALIDATORS_UNKNOWN.error({"height": height, "head": store.height, "known_up_to": known})
        return render_validators(store.load_validators_at(height), height, self._prefix)

    def declarations(self) -> list[Method]:
        """The ``chain_*`` methods, declared for the engine and for ``rpc.discover``."""
        return [
            Method(
                name="chain_status",
                handler=self.status,
                summary="Chain id, address prefix, assets, height, head hash, view, validators, peers and sync state.",
                result=Result(
                    "status", STATUS_SCHEMA, "The network's identity and the node's chain and network status."
                ),
                description="A wallet reads chain_id and address_prefix here to sign and check addresses "
                "for whichever network the node runs.",
            ),
            Method(
                name="chain_getBlock",
                handler=self.get_block,
                summary="A final block by height or hash, with transaction hashes or whole transactions.",
                params=(
                    _BLOCK_PARAM,
                    Param(
                        "full_transactions", BOOLEAN, "True for whole transactions instead of their hashes.",
                        required=False, default=False,
                    ),
                ),
                result=Result("block", BLOCK_SCHEMA, "The block's header fields and its transactions."),
                errors=(BLOCK_NOT_FOUND, NOT_KEPT),
            ),
            Method(
                name="chain_getTransaction",
                handler=self.get_transaction,
                summary="A final transaction by hash, with its block height and index.",
                params=(Param("transaction_hash", HASH, "The transaction's hash, as tx_submit returned it."),),
                result=Result("transaction", TRANSACTION_SCHEMA, "The transaction, its kind's fields and its place."),
                errors=(TRANSACTION_NOT_FOUND, TRANSACTION_DROPPED),
                description="A transaction still in the mempool is not found; the error's data says pending: true. "
                "One this node dropped from its mempool (expired, replaced, or never includable any more) is "
                "-32023 with the rule and the reason.",
            ),
            Method(
                name="chain_getCertificate",
                handler=self.get_certificate,
                summary="The commit certificate of a final block: the quorum of validator signatures.",
                params=(_BLOCK_PARAM,),
                result=Result("certificate", CERTIFICATE_SCHEMA, "The signatures that make the block final."),
                errors=(BLOCK_NOT_FOUND, NOT_KEPT, NO_CERTIFICATE),
                description="Each signature is over (chain id, height, view, block hash); anyone holding the "
                "validator set can check it. Validators are named from the set in force now.",
            ),
            Method(
                name="chain_validators",
                handler=self.validators,
                summary="The validator set that decides a height, in PBFT order, with names, addresses and keys.",
                params=(
                    Param(
                        "height", HEIGHT, "The height decided (1 or more); absent: the next height.", required=False
                    ),
                ),
                result=Result("validators", VALIDATORS_SCHEMA, "The validators, the quorum and the faults tolerated."),
                errors=(VALIDATORS_UNKNOWN,),
                description="A change approved in block h decides heights from h + 2, so a node knows the set of "
                "every height up to its head's + 2; a later height is -32027.",
            ),
        ]
