"""Governance as the RPC answers it: a proposed change and a proposal, next to their schemas.

Validator keys are ``0x`` hex (they name consensus keys, as ``chain_validators`` shows
them); an account given or losing the issuer role is its text address, with its key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mura.chain.address import encode_address
from mura.chain.governance import CHANGES, Change, GrantIssuer, Proposal, ProposalStatus, RevokeIssuer
from mura.rpc.params import HASH_SCHEMA, to_hex

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_TEXT: dict[str, Any] = {"type": "string"}
_ACCOUNT: dict[str, Any] = {"type": "string", "description": "The account's text address."}

CHANGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind"],
    "description": "kind, then its fields: add_validator {public_key, name, address (host:port)}; "
    "remove_validator {public_key}; replace_key {old_key, new_key, address (empty: unchanged)}; "
    "grant_issuer and revoke_issuer {account, public_key}.",
    "properties": {
        "kind": {"type": "string", "enum": list(CHANGES)},
        "public_key": HASH_SCHEMA,
        "old_key": HASH_SCHEMA,
        "new_key": HASH_SCHEMA,
        "name": _TEXT,
        "address": _TEXT,
        "account": _ACCOUNT,
    },
}


def render_change(change: Change, prefix: str) -> dict[str, Any]:
    """A change's kind and fields, keys as hex; an issuer change's account as its address too."""
    fields: dict[str, Any] = {"kind": change.KIND}
    for field in dataclasses.fields(change):
        value = getattr(change, field.name)
        fields[field.name] = to_hex(value) if isinstance(value, bytes) else value
    if isinstance(change, GrantIssuer | RevokeIssuer):
        fields.update(account=encode_address(change.account, prefix), public_key=to_hex(change.account))
    return fields


PROPOSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "proposer",
        "proposer_name",
        "change",
        "approvals",
        "quorum",
        "created_height",
        "expires_height",
        "status",
        "activation_height",
    ],
    "properties": {
        "id": {**_COUNT, "description": "Sequential from 1."},
        "proposer": {**HASH_SCHEMA, "description": "The proposing validator's key."},
        "proposer_name": {"type": ["string", "null"]},
        "change": CHANGE_SCHEMA,
        "approvals": {
            "type": "array",
            "description": "In the order given, the proposer's first; name is null for a key no longer in the set.",
            "items": {
                "type": "object",
                "required": ["public_key", "name"],
                "properties": {"public_key": HASH_SCHEMA, "name": {"type": ["string", "null"]}},
            },
        },
        "quorum": {
            **_COUNT,
            "description": "Approvals from the current set needed (for an open proposal: of the set deciding the "
            "next block; counted when each approval is applied).",
        },
        "created_height": _COUNT,
        "expires_height": {**_COUNT, "description": "From this height it is expired unless approved before."},
        "status": {"type": "string", "enum": [status.value for status in ProposalStatus]},
        "activation_height": {
            "type": ["integer", "null"],
            "description": "When approved: the first height decided with the change in force; null otherwise.",
        },
    },
}


def render_proposal(proposal: Proposal, names: Mapping[bytes, str], quorum: int, prefix: str) -> dict[str, Any]:
    """A proposal with its approvers named from ``names`` (key -> validator name)."""
    return {
        "id": proposal.id,
        "proposer": to_hex(proposal.proposer),
        "proposer_name": names.get(proposal.proposer),
        "change": render_change(proposal.change, prefix),
        "approvals": [{"public_key": to_hex(key), "name": names.get(key)} for key in proposal.approvers],
        "quorum": quorum,
        "created_height": proposal.created_height,
        "expires_height": proposal.expires_height,
        "status": proposal.status.value,
        "activation_height": proposal.activation_height or None,
    }
