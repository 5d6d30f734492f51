"""Chain objects as the RPC answers them, each renderer next to the JSON Schema of its output.

Hashes, keys and signatures are ``0x`` hex; accounts are text addresses with
the network's prefix; amounts, heights and nonces are JSON integers. Amounts
can exceed 2^53, past which a JavaScript ``Number`` loses digits: parse
responses with a big-integer-aware JSON reader there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mura.chain.address import encode_address
from mura.chain.assets import AssetState, AssetTerms, TransferPolicy
from mura.chain.block import ZERO_HASH, Block, CommitCertificate, quorum_size
from mura.chain.governance import ValidatorRecord
from mura.chain.keys import PUBLIC_KEY_SIZE
from mura.chain.state import Account, Role
from mura.chain.transaction import (
    KINDS,
    Approve,
    ApproveHolder,
    Body,
    Burn,
    CancelSubscription,
    Freeze,
    IssueAsset,
    IssueBond,
    Mint,
    OpenOffering,
    Propose,
    RevokeHolder,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transaction,
    Transfer,
    Unfreeze,
)
from mura.rpc.finality import FinalLocation
from mura.rpc.governance_render import CHANGE_SCHEMA, render_change
from mura.rpc.params import HASH_SCHEMA, to_hex

_ADDRESS_SCHEMA: dict[str, Any] = {"type": "string", "description": "A text address, e.g. tnac1..."}
_COUNT_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 0}
_HEX_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^0x([0-9a-f]{2})*$"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _object(properties: Mapping[str, Any], *, optional: Sequence[str] = ()) -> dict[str, Any]:
    """The schema of an object with these properties, all required but ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": dict(properties),
    }


# --- transactions -----------------------------------------------------------------------

LOCATION_PROPERTIES: dict[str, Any] = {
    "block_height": {**_COUNT_SCHEMA, "description": "Height of the block that holds it."},
    "block_hash": {**HASH_SCHEMA, "description": "Hash of that block."},
    "index": {**_COUNT_SCHEMA, "description": "Its position in that block."},
}

_ASSET_ID_SCHEMA: dict[str, Any] = {"type": "string", "description": "An asset id, e.g. NAC."}
_AMOUNT_SCHEMA: dict[str, Any] = {**_COUNT_SCHEMA, "description": "Smallest units of the asset."}
_NULLABLE_COUNT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0}
_TIME_SCHEMA: dict[str, Any] = {
    "type": ["string", "null"],
    "description": "RFC 3339 UTC text, e.g. 2031-01-01T00:00:00Z; null for none (or a time past the year 9999).",
}
_ACCOUNT_ACTION = _object({"asset": _ASSET_ID_SCHEMA, "account": _ADDRESS_SCHEMA})
_MS_SCHEMA: dict[str, Any] = {**_COUNT_SCHEMA, "description": "Milliseconds since the Unix epoch."}
_OPTIONAL_ACCOUNT: dict[str, Any] = {"type": ["string", "null"], "description": "An address; null: the issuer."}
_UNITS_SCHEMA: dict[str, Any] = {**_COUNT_SCHEMA, "description": "Whole units of the bond."}

#: The body of each kind, by the kind's name.
BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    Transfer.KIND: _object(
        {
            "asset": _ASSET_ID_SCHEMA,
            "recipient": _ADDRESS_SCHEMA,
            "amount": _AMOUNT_SCHEMA,
            "memo": {"type": "string", "description": "Free text for the parties; empty for none."},
        }
    ),
    Mint.KIND: _object({"asset": _ASSET_ID_SCHEMA, "recipient": _ADDRESS_SCHEMA, "amount": _AMOUNT_SCHEMA}),
    Burn.KIND: _object({"asset": _ASSET_ID_SCHEMA, "amount": _AMOUNT_SCHEMA}),
    IssueAsset.KIND: _object(
        {
            "asset": _ASSET_ID_SCHEMA,
            "name": {"type": "string"},
            "decimals": {**_COUNT_SCHEMA, "description": "Digits after the decimal point."},
            "supply": {**_AMOUNT_SCHEMA, "description": "Smallest units credited to the issuer at issue."},
            "reissuable": {"type": "boolean", "description": "Whether the issuer may mint more later."},
            "cap": {**_NULLABLE_COUNT, "description": "The most the supply may reach by minting; null for none."},
            "registrar": {
                "type": ["string", "null"],
                "description": "Address of the account that approves holders and freezes accounts; null: the issuer.",
            },
            "policy": {"type": "string", "enum": [policy.value for policy in TransferPolicy]},
            "expiry_ms": {**_NULLABLE_COUNT, "description": "Milliseconds since the Unix epoch; null: never."},
            "expiry_time": _TIME_SCHEMA,
        }
    ),
    ApproveHolder.KIND: _ACCOUNT_ACTION,
    RevokeHolder.KIND: _ACCOUNT_ACTION,
    Freeze.KIND: _ACCOUNT_ACTION,
    Unfreeze.KIND: _ACCOUNT_ACTION,
    IssueBond.KIND: _object(
        {
            "asset": _ASSET_ID_SCHEMA,
            "name": {"type": "string"},
            "units": _UNITS_SCHEMA,
            "registrar": _OPTIONAL_ACCOUNT,
            "policy": {"type": "string", "enum": [policy.value for policy in TransferPolicy]},
            "settlement": {**_ASSET_ID_SCHEMA, "description": "The asset coupons and the redemption are paid in."},
            "face": {**_COUNT_SCHEMA, "description": "Face value of a unit, in the settlement asset's smallest units."},
            "rate": {**_COUNT_SCHEMA, "description": "Annual coupon rate in millionths (4550 is 0.455 %)."},
            "frequency": {**_COUNT_SCHEMA, "description": "Regular coupons a year."},
            "first_period_days": {**_COUNT_SCHEMA, "description": "Days of an odd first period; 0: regular."},
            "coupon_times": {"type": "array", "items": _MS_SCHEMA},
            "maturity_ms": _MS_SCHEMA,
            "issue_ms": _MS_SCHEMA,
            "paying": _OPTIONAL_ACCOUNT,
            "proceeds": _OPTIONAL_ACCOUNT,
            "use_of_proceeds": {"type": "string"},
            "green": {"type": "boolean"},
        }
    ),
    OpenOffering.KIND: _object(
        {
            "bond": _ASSET_ID_SCHEMA,
            "units": _UNITS_SCHEMA,
            "price": {**_COUNT_SCHEMA, "description": "Price of a unit, in the settlement asset's smallest units."},
            "start_ms": _MS_SCHEMA,
            "end_ms": _MS_SCHEMA,
            "min_units": _UNITS_SCHEMA,
            "max_units": {**_COUNT_SCHEMA, "description": "Most units per subscription; 0: every unit on sale."},
            "min_total": {**_COUNT_SCHEMA, "description": "Units below which the offering is cancelled; 0: none."},
        }
    ),
    Subscribe.KIND: _object({"bond": _ASSET_ID_SCHEMA, "units": _UNITS_SCHEMA}),
    CancelSubscription.KIND: _object({"bond": _ASSET_ID_SCHEMA}),
    SettleTrade.KIND: _object(
        {
            "bond": _ASSET_ID_SCHEMA,
            "seller": _ADDRESS_SCHEMA,
            "buyer": _ADDRESS_SCHEMA,
            "units": _UNITS_SCHEMA,
            "amount": {**_AMOUNT_SCHEMA, "description": "Smallest units of the settlement asset paid for them."},
            "deadline_ms": _MS_SCHEMA,
            "reference": _HEX_SCHEMA,
            "counterparty_signature": _HEX_SCHEMA,
        }
    ),
    SpendProceeds.KIND: _object(
        {
            "bond": _ASSET_ID_SCHEMA,
            "recipient": _ADDRESS_SCHEMA,
            "amount": _AMOUNT_SCHEMA,
            "purpose": {"type": "string"},
        }
    ),
    Propose.KIND: _object({"change": CHANGE_SCHEMA}),
    Approve.KIND: _object({"proposal": {**_COUNT_SCHEMA, "description": "The proposal's id."}}),
}
assert BODY_SCHEMAS.keys() == KINDS.keys(), "every kind's body has a schema"

TRANSACTION_SCHEMA = _object(
    {
        "hash": HASH_SCHEMA,
        "chain_id": {"type": "string"},
        "sender": _ADDRESS_SCHEMA,
        "nonce": _COUNT_SCHEMA,
        "kind": {"type": "string", "enum": list(KINDS)},
        "body": {
            "anyOf": [{**schema, "title": kind} for kind, schema in BODY_SCHEMAS.items()],
            "description": "The kind's fields (the schema titled with the kind): accounts as addresses, amounts "
            "as integers in the asset's smallest units.",
        },
        "signature": _HEX_SCHEMA,
        "size": {**_COUNT_SCHEMA, "description": "Bytes of the encoded transaction."},
        "raw": {**_HEX_SCHEMA, "description": "The encoded transaction, as tx_submit takes it."},
        **LOCATION_PROPERTIES,
    }
)


def render_time(timestamp_ms: int) -> str | None:
    """Milliseconds since the epoch as RFC 3339 UTC text (milliseconds shown when not zero);
    None past the year 9999, which RFC 3339 cannot write."""
    try:
        moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    except OverflowError:
        return None
    fraction = f".{timestamp_ms % 1000:03d}" if timestamp_ms % 1000 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def render_value(value: object, prefix: str) -> Any:
    """One body field: a 32-byte value is an account (shown as its address), other bytes hex."""
    if isinstance(value, bytes):
        return encode_address(value, prefix) if len(value) == PUBLIC_KEY_SIZE else to_hex(value)
    return value


def render_body(body: Body, prefix: str) -> dict[str, Any]:
    """A transaction's kind-specific fields, by name; an issue's "none" values (no cap, no
    expiry, the issuer as registrar) as null."""
    assert dataclasses.is_dataclass(body)
    fields = {field.name: render_value(getattr(body, field.name), prefix) for field in dataclasses.fields(body)}
    if isinstance(body, IssueAsset):
        fields.update(
            cap=body.cap or None,
            registrar=encode_address(body.registrar, prefix) if body.registrar else None,
            expiry_ms=body.expiry_ms or None,
            expiry_time=render_time(body.expiry_ms) if body.expiry_ms else None,
        )
    if isinstance(body, IssueBond):
        fields.update(
            {name: encode_address(getattr(body, name), prefix) if getattr(body, name) else None
             for name in ("registrar", "paying", "proceeds")},
            coupon_times=list(body.coupon_times),
        )  # fmt: skip
    if isinstance(body, SettleTrade):
        fields.update(reference=to_hex(body.reference))
    if isinstance(body, Propose):
        fields.update(change=render_change(body.change, prefix))
    return fields


def render_transaction(transaction: Transaction, prefix: str, location: FinalLocation) -> dict[str, Any]:
    """A final transaction with where it sits in the chain."""
    return {
        "hash": to_hex(transaction.hash),
        "chain_id": transaction.chain_id,
        "sender": encode_address(transaction.sender, prefix),
        "nonce": transaction.nonce,
        "kind": transaction.kind,
        "body": render_body(transaction.body, prefix),
        "signature": to_hex(transaction.signature),
        "size": len(transaction.encoded),
        "raw": to_hex(transaction.encoded),
        **render_location(location),
    }


def render_location(location: FinalLocation) -> dict[str, Any]:
    return {"block_height": location.height, "block_hash": to_hex(location.block_hash), "index": location.index}


# --- blocks and certificates ------------------------------------------------------------------

_HEADER_PROPERTIES: dict[str, Any] = {
    "height": _COUNT_SCHEMA,
    "hash": HASH_SCHEMA,
    "chain_id": {"type": "string"},
    "parent_hash": HASH_SCHEMA,
    "timestamp_ms": {
        "type": "integer",
        "description": "Milliseconds since the Unix epoch, as the proposer saw it.",
    },
    "proposer": {"oneOf": [_ADDRESS_SCHEMA, {"type": "null"}], "description": "Null for the genesis block."},
    "transaction_root": HASH_SCHEMA,
    "state_root": HASH_SCHEMA,
    "next_validators_hash": {
        **HASH_SCHEMA,
        "description": "SHA-256 of the keys, in order, of the validator set that decides the next height.",
    },
    "transaction_count": _COUNT_SCHEMA,
}
#: A block's header fields and its transaction count, as a subscription notifies each final block.
BLOCK_HEADER_SCHEMA = _object(_HEADER_PROPERTIES)
BLOCK_SCHEMA = _object(
    {
        **_HEADER_PROPERTIES,
        "transactions": {
            "type": "array",
            "description": "Transaction hashes, or whole transactions (as chain_getTransaction) when asked for.",
            "items": {"oneOf": [HASH_SCHEMA, TRANSACTION_SCHEMA]},
        },
    }
)


def render_block_header(block: Block, prefix: str) -> dict[str, Any]:
    """A block's header fields and how many transactions it holds (``chain_getBlock`` without
    ``transactions``, and what a subscription to final blocks is sent)."""
    header = block.header
    return {
        "height": header.height,
        "hash": to_hex(block.hash),
        "chain_id": header.chain_id,
        "parent_hash": to_hex(header.parent_hash),
        "timestamp_ms": header.timestamp_ms,
        "proposer": None if header.proposer == ZERO_HASH else encode_address(header.proposer, prefix),
        "transaction_root": to_hex(header.transaction_root),
        "state_root": to_hex(header.state_root),
        "next_validators_hash": to_hex(header.next_validators_hash),
        "transaction_count": len(block.transactions),
    }


def render_block(block: Block, prefix: str, *, full_transactions: bool) -> dict[str, Any]:
    """A block's header and its transactions, as hashes or in full."""
    transactions: list[Any] = [
        render_transaction(transaction, prefix, FinalLocation(block.height, index, block.hash))
        if full_transactions
        else to_hex(transaction.hash)
        for index, transaction in enumerate(block.transactions)
    ]
    return {**render_block_header(block, prefix), "transactions": transactions}


_SIGNER_SCHEMA = _object(
    {
        "validator_index": _COUNT_SCHEMA,
        "validator": {"oneOf": [_ADDRESS_SCHEMA, {"type": "null"}]},
        "name": {"oneOf": [{"type": "string"}, {"type": "null"}]},
        "signature": _HEX_SCHEMA,
    }
)

CERTIFICATE_SCHEMA = _object(
    {
        "height": _COUNT_SCHEMA,
        "view": {**_COUNT_SCHEMA, "description": "The PBFT view the commits were cast in."},
        "block_hash": HASH_SCHEMA,
        "quorum": {**_COUNT_SCHEMA, "description": "Signatures needed for the validator set now."},
        "signatures": {"type": "array", "items": _SIGNER_SCHEMA},
    }
)


def render_certificate(
    certificate: CommitCertificate, validators: Sequence[bytes], names: Mapping[bytes, str], prefix: str, quorum: int
) -> dict[str, Any]:
    """A commit certificate, each signature with its validator's address and name."""

    def signer(index: int, signature: bytes) -> dict[str, Any]:
        key = validators[index] if index < len(validators) else None
        return {
            "validator_index": index,
            "validator": None if key is None else encode_address(key, prefix),
            "name": None if key is None else names.get(key),
            "signature": to_hex(signature),
        }

    return {
        "height": certificate.height,
        "view": certificate.view,
        "block_hash": to_hex(certificate.block_hash),
        "quorum": quorum,
        "signatures": [signer(index, signature) for index, signature in certificate.signatures],
    }


# --- validators and accounts --------------------------------------------------------------------

VALIDATORS_SCHEMA = _object(
    {
        "height": {**_COUNT_SCHEMA, "description": "The height this set decides."},
        "quorum": {**_COUNT_SCHEMA, "description": "Distinct validators whose votes make a block final."},
        "fault_tolerance": {**_COUNT_SCHEMA, "description": "Faulty validators the set tolerates (f of 3f+1)."},
        "validators": {
            "type": "array",
            "items": _object(
                {
                    "index": _COUNT_SCHEMA,
                    "name": {"type": "string", "description": "The operator's name."},
                    "address": _ADDRESS_SCHEMA,
                    "public_key": HASH_SCHEMA,
                    "peer_address": {"type": "string", "description": "host:port of its peer endpoint (may be empty)."},
                }
            ),
        },
    }
)


def render_validators(validators: Sequence[ValidatorRecord], height: int, prefix: str) -> dict[str, Any]:
    """The validator set that decides ``height``, in PBFT order."""
    return {
        "height": height,
        "quorum": quorum_size(len(validators)),
        "fault_tolerance": (len(validators) - 1) // 3,
        "validators": [
            {
                "index": index,
                "name": record.name,
                "address": encode_address(record.public_key, prefix),
                "public_key": to_hex(record.public_key),
                "peer_address": record.address,
            }
            for index, record in enumerate(validators)
        ],
    }


BALANCE_SCHEMA = _object(
    {
        "asset": _ASSET_ID_SCHEMA,
        "balance": {**_AMOUNT_SCHEMA, "description": "Smallest units held (always positive here)."},
        "decimals": {**_COUNT_SCHEMA, "description": "The asset's decimals: 2 means 100 smallest units make one."},
    }
)


def render_balances(balances: Sequence[tuple[AssetTerms, int]]) -> list[dict[str, Any]]:
    """Positive balances, each with its asset's decimals."""
    return [{"asset": terms.asset, "balance": balance, "decimals": terms.decimals} for terms, balance in balances]


ACCOUNT_SCHEMA = _object(
    {
        "address": _ADDRESS_SCHEMA,
        "public_key": HASH_SCHEMA,
        "nonce": {**_COUNT_SCHEMA, "description": "The nonce the account's next final transaction carries."},
        "pending": {**_COUNT_SCHEMA, "description": "Its transactions waiting in this node's mempool."},
        "next_nonce": {
            **_COUNT_SCHEMA,
            "description": "The nonce to sign a new transaction with: past those pending here in order.",
        },
        "roles": {"type": "array", "items": {"type": "string", "enum": ["issuer", "validator"]}},
        "balances": {
            "type": "array",
            "items": BALANCE_SCHEMA,
            "description": "Final positive balances by asset id (the first 100 at most; account_getBalances pages on).",
        },
        "more_balances": {
            "type": "boolean",
            "description": "True when the account holds more assets than balances shows.",
        },
    }
)


def role_names(roles: Role) -> list[str]:
    """``Role`` flags as lowercase names, e.g. ``["issuer"]``."""
    return [role.name.lower() for role in Role if role and role.name and role in roles]


def render_account(
    public_key: bytes,
    account: Account,
    balances: Sequence[tuple[AssetTerms, int]],
    pending_nonces: Sequence[int],
    prefix: str,
    *,
    more_balances: bool,
) -> dict[str, Any]:
    """An account's final state and what this node holds pending for it."""
    next_nonce = account.nonce
    waiting = set(pending_nonces)
    while next_nonce in waiting:
        next_nonce += 1
    return {
        "address": encode_address(public_key, prefix),
        "public_key": to_hex(public_key),
        "nonce": account.nonce,
        "pending": len(pending_nonces),
        "next_nonce": next_nonce,
        "roles": role_names(account.roles),
        "balances": render_balances(balances),
        "more_balances": more_balances,
    }


# --- assets ------------------------------------------------------------------------------------

ASSET_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": _ASSET_ID_SCHEMA,
    "name": {"type": "string"},
    "decimals": {**_COUNT_SCHEMA, "description": "Digits after the decimal point."},
    "issuer": {**_ADDRESS_SCHEMA, "description": "The account that mints and burns it and receives what lapses."},
    "policy": {
        "type": "string",
        "enum": [policy.value for policy in TransferPolicy],
        "description": "open: anyone holds it; restricted: only the issuer and approved holders.",
    },
    "reissuable": {"type": "boolean", "description": "Whether the issuer may mint more."},
    "supply": {**_AMOUNT_SCHEMA, "description": "Smallest units in existence."},
    "holders": {**_COUNT_SCHEMA, "description": "Accounts holding a positive balance."},
    "expired": {"type": "boolean", "description": "Its expiry time has passed: it moves only back to its issuer."},
}
ASSET_SUMMARY_SCHEMA = _object(ASSET_SUMMARY_PROPERTIES)
ASSET_SCHEMA = _object(
    {
        **ASSET_SUMMARY_PROPERTIES,
        "registrar": {**_ADDRESS_SCHEMA, "description": "The account that approves holders and freezes accounts."},
        "cap": {**_NULLABLE_COUNT, "description": "The most the supply may reach by minting; null for none."},
        "expiry_ms": {**_NULLABLE_COUNT, "description": "Milliseconds since the Unix epoch it lapses at; null: never."},
        "expiry_time": _TIME_SCHEMA,
        "lapsed": {**_AMOUNT_SCHEMA, "description": "Smallest units returned to the issuer at expiry so far."},
        "lapse_complete": {"type": "boolean", "description": "Every balance has returned to the issuer."},
    }
)


def render_asset_summary(terms: AssetTerms, state: AssetState, prefix: str) -> dict[str, Any]:
    """An asset as ``asset_list`` shows it."""
    return {
        "id": terms.asset,
        "name": terms.name,
        "decimals": terms.decimals,
        "issuer": encode_address(terms.issuer, prefix),
        "policy": terms.policy.value,
        "reissuable": terms.reissuable,
        "supply": state.supply,
        "holders": state.holders,
        "expired": state.expired,
    }


def render_asset(terms: AssetTerms, state: AssetState, prefix: str) -> dict[str, Any]:
    """An asset's terms and state, as ``asset_get`` shows them."""
    return {
        **render_asset_summary(terms, state, prefix),
        "registrar": encode_address(terms.registrar, prefix),
        "cap": terms.cap or None,
        "expiry_ms": terms.expiry_ms or None,
        "expiry_time": render_time(terms.expiry_ms) if terms.expiry_ms else None,
        "lapsed": state.lapsed,
        "lapse_complete": state.lapse_complete,
    }
