"""The simulated clients: their keys, the assets they use, and what the committed state lets them send.

Client 0 is the treasury: it holds the issuer role and issues every asset. The
others are residents. The village's paying account (``PAYING``) has a key but
sends nothing: the chain pays the bond's coupons and redemption out of it.
"""

from __future__ import annotations

from dataclasses import replace

from mura.chain.assets import AssetTerms
from mura.chain.keys import SigningKey, sha256
from mura.chain.pending import PendingState
from mura.chain.transaction import (
    Body,
    IssueBond,
    SettleTrade,
    Transaction,
    Transfer,
    paying_consent_payload,
    sign_transaction,
    trade_payload,
)

CHAIN_ID = "mura-sim"
CLIENT_COUNT = 4
#: The client that issues every asset.
TREASURY = 0
NAC = "NAC"
VOUCHER = "VOUCHER"
#: A restricted asset the treasury issues during the run (an asset, not a bond with terms).
BOND = "BOND"
#: The settlement asset of the village's bond: an open yen coin with a fixed supply.
JPYT = "JPYT"
#: The village's bond, with coupons and a redemption the chain pays in JPYT.
ROAD = "FOREST-ROAD"


def derive_key(label: str) -> SigningKey:
    """A fixed key per label, so runs are reproducible and signatures cacheable."""
    return SigningKey.from_private_bytes(sha256(label.encode()))


CLIENT_KEYS = tuple(derive_key(f"sim-client-{index}") for index in range(CLIENT_COUNT))
#: The account the bond's payments come from (its key only consents to the bond's terms).
PAYING_KEY = derive_key("sim-paying-account")
PAYING = PAYING_KEY.public_key


class TransactionSigner:
    """Signs client transactions once per run: Ed25519 is deterministic, so a repeated
    transaction is the same one and needs no second signature."""

    def __init__(self) -> None:
        self._signed: dict[tuple[int, int, Body], Transaction] = {}
        self._countersigned: dict[tuple[int, SettleTrade], SettleTrade] = {}
        self._consented: dict[IssueBond, IssueBond] = {}

    def sign(self, client: int, nonce: int, body: Body) -> Transaction:
        key = (client, nonce, body)
        if key not in self._signed:
            self._signed[key] = sign_transaction(CLIENT_KEYS[client], chain_id=CHAIN_ID, nonce=nonce, body=body)
        return self._signed[key]

    def countersign(self, client: int, trade: SettleTrade) -> SettleTrade:
        """``trade`` carrying ``client``'s signature over its terms, as its counterparty."""
        key = (client, trade)
        if key not in self._countersigned:
            signature = CLIENT_KEYS[client].sign(trade_payload(CHAIN_ID, trade))
            self._countersigned[key] = SettleTrade(
                trade.bond, trade.seller, trade.buyer, trade.units, trade.amount, trade.deadline_ms,
                trade.reference, signature,
            )  # fmt: skip
        return self._countersigned[key]

    def consent(self, bond: IssueBond) -> IssueBond:
        """``bond`` carrying the paying account's consent to pay it, issued by the treasury."""
        if bond not in self._consented:
            payload = paying_consent_payload(CHAIN_ID, CLIENT_KEYS[TREASURY].public_key, bond)
            self._consented[bond] = replace(bond, paying_consent=PAYING_KEY.sign(payload))
        return self._consented[bond]


class ClientView:
    """What the committed state allows a client to send."""

    def __init__(self, pending: PendingState) -> None:
        self.pending = pending

    def live(self, asset: str) -> AssetTerms | None:
        """``asset``'s terms if it is issued and not expired."""
        terms = self.pending.asset(asset)
        if terms is None or self.pending.asset_state(asset).expired:
            return None
        return terms

    def may_move(self, terms: AssetTerms, client: int) -> bool:
        """Whether ``client`` may send or receive ``terms``' asset: not frozen in it, and
        approved if it is restricted."""
        address = CLIENT_KEYS[client].public_key
        if self.pending.frozen(terms.asset, address):
            return False
        return not terms.restricted or self.pending.approved(terms, address)

    def recipient(self, terms: AssetTerms, sender: int) -> int | None:
        """The next client after ``sender`` that may receive ``terms``' asset."""
        for step in range(1, CLIENT_COUNT):
            client = (sender + step) % CLIENT_COUNT
            if self.may_move(terms, client):
                return client
        return None

    def transfer(self, sender: int, asset: str, amount: int, *, memo: str = "") -> Transfer | None:
        """A transfer of ``asset`` if ``sender`` may send it, otherwise of NAC; None if neither."""
        for choice in dict.fromkeys((asset, NAC)):
            terms = self.live(choice)
            if terms is None or not self.may_move(terms, sender):
                continue
            if self.pending.balance(CLIENT_KEYS[sender].public_key, choice) < amount:
                continue
            recipient = self.recipient(terms, sender)
            if recipient is not None:
                return Transfer(choice, CLIENT_KEYS[recipient].public_key, amount, memo)
        return None

    def balance(self, client: int, asset: str) -> int:
        return self.pending.balance(CLIENT_KEYS[client].public_key, asset)
