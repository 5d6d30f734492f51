"""What the explorer tests put on the testnet before the first test, and find in the pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: A transfer a person would look up: 12.50 NAC (NAC has 2 decimals) to a fresh account.
TRANSFER_AMOUNT = 1250
TRANSFER_MEMO = "Firewood for the onsen, March"
#: A memo a page that builds HTML from data would run as markup.
MARKUP_MEMO = "<img src=x onerror=alert(1)>"
#: JPYT has no decimals.
JPYT_AMOUNT = 30_000
#: An asset the bank issues with the largest supply there can be, 2 decimals: past 2^53, where a
#: JavaScript number would lose its last digits.
LARGE_ASSET = "VAULT"
LARGE_SUPPLY = 2**64 - 1
LARGE_SUPPLY_TEXT = "184,467,440,737,095,516.15"
#: A municipal bond the bank issues and offers, paid in JPYT (0 decimals), with an investor's subscription.
BOND = "FOREST-ROAD-1"
BOND_NAME = "Forest road bond"
BOND_FACE = 10_000
BOND_FACE_TEXT = "10,000 JPYT"
BOND_UNITS_OFFERED = 8
BOND_SUBSCRIBED_UNITS = 3
#: How long a transaction may take to become final on the fast testnet (tx_wait's own limit is 5 s,
#: the cluster's HTTP timeout).
FINAL_WITHIN_SECONDS = 4


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the testnet holds beyond its genesis, as the node renders it over JSON-RPC."""

    treasury: str
    bank: str
    #: The account that received ``transfer`` and ``jpyt_transfer``, and nothing else.
    recipient: str
    #: chain_getTransaction's answer for 12.50 NAC from the treasury to ``recipient``.
    transfer: dict[str, Any]
    jpyt_transfer: dict[str, Any]
    #: A transfer whose memo is HTML markup, to ``markup_recipient``.
    markup_transfer: dict[str, Any]
    markup_recipient: str
    #: chain_getTransaction's answer for the bank's issue of LARGE_ASSET.
    large_issue: dict[str, Any]
    #: Who subscribed BOND_SUBSCRIBED_UNITS units of BOND in its offering.
    investor: str
    validators: list[str]
    #: governance_getProposals's answers: a grant of the issuer role a quorum approved, and one
    #: with the proposer's approval only.
    approved_proposal: dict[str, Any]
    open_proposal: dict[str, Any]
