"""Transactions: the signed envelope and the body of each kind.

On the wire a transaction is ``[chain_id, sender, nonce, kind, body, signature]``.
The envelope never changes when a kind is added: a new kind is a new body class
registered in ``KINDS``. The signature covers the canonical encoding of every
other field, prefixed by a domain tag, so it cannot be mistaken for a vote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from mura.chain import codec
from mura.chain.errors import DecodeError, UnknownKind
from mura.chain.governance import Change, GrantIssuer, RevokeIssuer, change_from_fields, change_to_fields
from mura.chain.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, sha256

#: Largest encoded transaction a node accepts.
MAX_TRANSACTION_BYTES = 2048
MAX_CHAIN_ID_LENGTH = 64
_SIGNING_DOMAIN = "mura/transaction/v1"
_TRADE_DOMAIN = "mura/trade/v1"
_PAYING_DOMAIN = "mura/paying/v1"


class Body(Protocol):
    """The kind-specific part of a transaction."""

    KIND: ClassVar[str]

    def to_fields(self) -> list[Any]: ...


def _read_amount(value: Any, what: str) -> int:
    # Signed on the wire so that a zero or negative amount reaches the state
    # transition and is refused there by its own rule, not as malformed bytes.
    return codec.read_int(value, what, minimum=codec.MIN_INT, maximum=codec.MAX_INT)


def _read_asset(value: Any, what: str) -> str:
    # Any short text: an id that breaks the asset id rules is refused by the state
    # transition (``invalid_asset_id``, or ``unknown_asset``), not as malformed bytes.
    return codec.read_str(value, what, max_length=_MAX_ASSET_FIELD)


def _read_account(value: Any, what: str) -> bytes:
    return codec.read_bytes(value, what, length=PUBLIC_KEY_SIZE)


def _read_optional_account(value: Any, what: str) -> bytes:
    """An account, or empty bytes where a field may name none."""
    return b"" if value == b"" else _read_account(value, what)


#: Longest asset id field decoded: twice the longest valid id, so the rule names the problem.
_MAX_ASSET_FIELD = 64
#: Longest trade reference decoded.
_MAX_TRADE_REFERENCE = 32


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move ``amount`` of ``asset`` from the sender to ``recipient``, with a memo."""

    KIND: ClassVar[str] = "transfer"
    #: The asset moved.
    asset: str
    #: Public key of the account credited.
    recipient: bytes
    #: Smallest units moved.
    amount: int
    #: Free text for the parties (an invoice number, a purpose): at most ``MAX_MEMO_BYTES`` in UTF-8.
    memo: str = ""

    def to_fields(self) -> list[Any]:
        return [self.asset, self.recipient, self.amount, self.memo]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Transfer:
        asset, recipient, amount, memo = codec.read_fields(value, what, 4)
        return cls(
            _read_asset(asset, f"{what}.asset"),
            _read_account(recipient, f"{what}.recipient"),
            _read_amount(amount, f"{what}.amount"),
            # Bounded by the transaction's size; ``memo_too_long`` is the rule's to refuse.
            codec.read_str(memo, f"{what}.memo", max_length=MAX_TRANSACTION_BYTES),
        )


@dataclass(frozen=True, slots=True)
class Mint:
    """Create ``amount`` new units of ``asset`` in ``recipient``'s account (its issuer only)."""

    KIND: ClassVar[str] = "mint"
    #: The asset minted.
    asset: str
    #: Public key of the account credited.
    recipient: bytes
    #: Smallest units created.
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.asset, self.recipient, self.amount]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Mint:
        asset, recipient, amount = codec.read_fields(value, what, 3)
        return cls(
            _read_asset(asset, f"{what}.asset"),
            _read_account(recipient, f"{what}.recipient"),
            _read_amount(amount, f"{what}.amount"),
        )


@dataclass(frozen=True, slots=True)
class Burn:
    """Destroy ``amount`` units of ``asset`` from the sender's own account (its issuer only)."""

    KIND: ClassVar[str] = "burn"
    #: The asset burned.
    asset: str
    #: Smallest units destroyed.
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.asset, self.amount]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Burn:
        asset, amount = codec.read_fields(value, what, 2)
        return cls(_read_asset(asset, f"{what}.asset"), _read_amount(amount, f"{what}.amount"))


@dataclass(frozen=True, slots=True)
class IssueAsset:
    """Create a new asset with the sender as its issuer (accounts with the issuer role only).

    ``supply`` units are credited to the issuer at once. Fields a rule bounds (the id,
    the name, the decimals, the policy) are decoded as any value of their type, so
    that the state transition refuses them by name (``invalid_asset_id``,
    ``invalid_asset_terms``).
    """

    KIND: ClassVar[str] = "issue_asset"
    #: The new asset's id.
    asset: str
    #: Display name.
    name: str
    #: Digits after the decimal point.
    decimals: int
    #: Smallest units credited to the issuer at issue.
    supply: int
    #: Whether the issuer may mint more later.
    reissuable: bool
    #: Largest supply minting may reach (0: no cap of its own); only for a reissuable asset.
    cap: int
    #: Public key of the registrar, or empty bytes for the issuer itself.
    registrar: bytes
    #: ``open`` or ``restricted``.
    policy: str
    #: Milliseconds since the Unix epoch from which it lapses, or 0 for never.
    expiry_ms: int

    def to_fields(self) -> list[Any]:
        return [
            self.asset,
            self.name,
            self.decimals,
            self.supply,
            self.reissuable,
            self.cap,
            self.registrar,
            self.policy,
            self.expiry_ms,
        ]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> IssueAsset:
        asset, name, decimals, supply, reissuable, cap, registrar, policy, expiry = codec.read_fields(value, what, 9)
        return cls(
            _read_asset(asset, f"{what}.asset"),
            codec.read_str(name, f"{what}.name", max_length=MAX_TRANSACTION_BYTES),
            codec.read_int(decimals, f"{what}.decimals"),
            codec.read_int(supply, f"{what}.supply"),
            codec.read_bool(reissuable, f"{what}.reissuable"),
            codec.read_int(cap, f"{what}.cap"),
            _read_optional_account(registrar, f"{what}.registrar"),
            codec.read_str(policy, f"{what}.policy", max_length=_MAX_ASSET_FIELD),
            codec.read_int(expiry, f"{what}.expiry_ms"),
        )


@dataclass(frozen=True, slots=True)
class _AccountAction:
    """An asset's registrar acts on one account's standing in that asset."""

    KIND: ClassVar[str] = ""
    #: The asset.
    asset: str
    #: Public key of the account acted on.
    account: bytes

    def to_fields(self) -> list[Any]:
        return [self.asset, self.account]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Any:
        asset, account = codec.read_fields(value, what, 2)
        return cls(_read_asset(asset, f"{what}.asset"), _read_account(account, f"{what}.account"))


@dataclass(frozen=True, slots=True)
class ApproveHolder(_AccountAction):
    """The registrar approves ``account`` to hold and move a restricted asset."""

    KIND: ClassVar[str] = "approve_holder"


@dataclass(frozen=True, slots=True)
class RevokeHolder(_AccountAction):
    """The registrar withdraws an approval: the account keeps its balance but can neither send nor receive."""

    KIND: ClassVar[str] = "revoke_holder"


@dataclass(frozen=True, slots=True)
class Freeze(_AccountAction):
    """The registrar freezes ``account`` in the asset (a lost key, a court order)."""

    KIND: ClassVar[str] = "freeze"


@dataclass(frozen=True, slots=True)
class Unfreeze(_AccountAction):
    """The registrar lifts a freeze."""

    KIND: ClassVar[str] = "unfreeze"


@dataclass(frozen=True, slots=True)
class IssueBond:
    """Issue a bond: an asset of ``units`` whole units credited to the sender (accounts with
    the issuer role only), with the bond terms of ``chain.bonds.BondTerms``.

    Empty ``registrar``, ``paying`` or ``proceeds`` name the issuer itself. A paying
    account other than the issuer agrees to pay by signing ``paying_consent_payload``
    (these terms, from this issuer): ``paying_consent`` carries that signature (empty
    when the issuer pays).
    """

    KIND: ClassVar[str] = "issue_bond"
    asset: str
    name: str
    #: Units issued (the bond's fixed supply), credited to the issuer.
    units: int
    registrar: bytes
    #: ``restricted`` (the usual) or ``open``.
    policy: str
    settlement: str
    face: int
    rate: int
    frequency: int
    first_period_days: int
    coupon_times: tuple[int, ...]
    maturity_ms: int
    issue_ms: int
    paying: bytes
    proceeds: bytes
    use_of_proceeds: str
    green: bool
    paying_consent: bytes = b""

    def to_fields(self) -> list[Any]:
        return [*self.terms_fields(), self.paying_consent]

    def terms_fields(self) -> list[Any]:
        """Every field but the paying account's consent."""
        return [
            self.asset,
            self.name,
            self.units,
            self.registrar,
            self.policy,
            self.settlement,
            self.face,
            self.rate,
            self.frequency,
            self.first_period_days,
            list(self.coupon_times),
            self.maturity_ms,
            self.issue_ms,
            self.paying,
            self.proceeds,
            self.use_of_proceeds,
            self.green,
        ]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> IssueBond:
        (
            asset, name, units, registrar, policy, settlement, face, rate, frequency, days,
            times, maturity, issued, paying, proceeds, use, green, consent,
        ) = codec.read_fields(value, what, 18)  # fmt: skip
        return cls(
            _read_asset(asset, f"{what}.asset"),
            codec.read_str(name, f"{what}.name", max_length=MAX_TRANSACTION_BYTES),
            codec.read_int(units, f"{what}.units"),
            _read_optional_account(registrar, f"{what}.registrar"),
            codec.read_str(policy, f"{what}.policy", max_length=_MAX_ASSET_FIELD),
            _read_asset(settlement, f"{what}.settlement"),
            codec.read_int(face, f"{what}.face"),
            codec.read_int(rate, f"{what}.rate"),
            codec.read_int(frequency, f"{what}.frequency"),
            codec.read_int(days, f"{what}.first_period_days"),
            tuple(
                codec.read_int(time, f"{what}.coupon_times[]")
                for time in codec.read_list(times, f"{what}.coupon_times", max_length=MAX_TRANSACTION_BYTES)
            ),
            codec.read_int(maturity, f"{what}.maturity_ms"),
            codec.read_int(issued, f"{what}.issue_ms"),
            _read_optional_account(paying, f"{what}.paying"),
            _read_optional_account(proceeds, f"{what}.proceeds"),
            codec.read_str(use, f"{what}.use_of_proceeds", max_length=MAX_TRANSACTION_BYTES),
            codec.read_bool(green, f"{what}.green"),
            b"" if consent == b"" else codec.read_bytes(consent, f"{what}.paying_consent", length=SIGNATURE_SIZE),
        )


@dataclass(frozen=True, slots=True)
class OpenOffering:
    """The bond's issuer puts ``units`` of its own on sale at ``price`` each (see ``chain.bonds.Offering``)."""

    KIND: ClassVar[str] = "open_offering"
    bond: str
    units: int
    price: int
    start_ms: int
    end_ms: int
    min_units: int
    max_units: int
    min_total: int

    def to_fields(self) -> list[Any]:
        return [
            self.bond, self.units, self.price, self.start_ms, self.end_ms, self.min_units, self.max_units,
            self.min_total,
        ]  # fmt: skip

    @classmethod
    def from_fields(cls, value: Any, what: str) -> OpenOffering:
        bond, *numbers = codec.read_fields(value, what, 8)
        names = ("units", "price", "start_ms", "end_ms", "min_units", "max_units", "min_total")
        return cls(
            _read_asset(bond, f"{what}.bond"),
            *(codec.read_int(number, f"{what}.{name}") for number, name in zip(numbers, names, strict=True)),
        )


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Ask for ``units`` of a bond in its open offering, paying their price into escrow."""

    KIND: ClassVar[str] = "subscribe"
    bond: str
    units: int

    def to_fields(self) -> list[Any]:
        return [self.bond, self.units]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Subscribe:
        bond, units = codec.read_fields(value, what, 2)
        return cls(_read_asset(bond, f"{what}.bond"), _read_amount(units, f"{what}.units"))


@dataclass(frozen=True, slots=True)
class CancelSubscription:
    """Withdraw one's subscription before the offering ends, and take the payment back."""

    KIND: ClassVar[str] = "cancel_subscription"
    bond: str

    def to_fields(self) -> list[Any]:
        return [self.bond]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> CancelSubscription:
        (bond,) = codec.read_fields(value, what, 1)
        return cls(_read_asset(bond, f"{what}.bond"))


@dataclass(frozen=True, slots=True)
class SettleTrade:
    """Delivery versus payment: ``units`` of a bond from ``seller`` to ``buyer`` and ``amount``
    of its settlement asset from ``buyer`` to ``seller``, both or neither.

    Sent by one party; ``counterparty_signature`` is the other's signature over
    ``trade_payload`` (the same terms), so both signed one set of terms. A trade settles
    once, no later than ``deadline_ms``; ``reference`` tells apart two trades of the same terms.
    """

    KIND: ClassVar[str] = "settle_trade"
    bond: str
    seller: bytes
    buyer: bytes
    units: int
    amount: int
    deadline_ms: int
    reference: bytes
    counterparty_signature: bytes

    def to_fields(self) -> list[Any]:
        return [
            self.bond, self.seller, self.buyer, self.units, self.amount, self.deadline_ms, self.reference,
            self.counterparty_signature,
        ]  # fmt: skip

    @classmethod
    def from_fields(cls, value: Any, what: str) -> SettleTrade:
        bond, seller, buyer, units, amount, deadline, reference, signature = codec.read_fields(value, what, 8)
        return cls(
            _read_asset(bond, f"{what}.bond"),
            _read_account(seller, f"{what}.seller"),
            _read_account(buyer, f"{what}.buyer"),
            _read_amount(units, f"{what}.units"),
            _read_amount(amount, f"{what}.amount"),
            codec.read_int(deadline, f"{what}.deadline_ms"),
            codec.read_bytes(reference, f"{what}.reference", max_length=_MAX_TRADE_REFERENCE),
            codec.read_bytes(signature, f"{what}.counterparty_signature", length=SIGNATURE_SIZE),
        )


@dataclass(frozen=True, slots=True)
class SpendProceeds:
    """The bond's proceeds account pays ``amount`` of the settlement asset out of what the
    offering raised, for a stated ``purpose`` (summed by ``bond_getUseOfProceeds``)."""

    KIND: ClassVar[str] = "spend_proceeds"
    bond: str
    recipient: bytes
    amount: int
    purpose: str

    def to_fields(self) -> list[Any]:
        return [self.bond, self.recipient, self.amount, self.purpose]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> SpendProceeds:
        bond, recipient, amount, purpose = codec.read_fields(value, what, 4)
        return cls(
            _read_asset(bond, f"{what}.bond"),
            _read_account(recipient, f"{what}.recipient"),
            _read_amount(amount, f"{what}.amount"),
            codec.read_str(purpose, f"{what}.purpose", max_length=MAX_TRANSACTION_BYTES),
        )


@dataclass(frozen=True, slots=True)
class Propose:
    """A validator proposes one change of the validator set or of the issuer role
    (``chain.governance``); its own approval is the first."""

    KIND: ClassVar[str] = "propose"
    change: Change

    def to_fields(self) -> list[Any]:
        return change_to_fields(self.change)

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Propose:
        return cls(change_from_fields(value, f"{what}.change"))


@dataclass(frozen=True, slots=True)
class Approve:
    """A validator approves an open proposal."""

    KIND: ClassVar[str] = "approve"
    #: The proposal's id.
    proposal: int

    def to_fields(self) -> list[Any]:
        return [self.proposal]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Approve:
        (proposal,) = codec.read_fields(value, what, 1)
        return cls(codec.read_int(proposal, f"{what}.proposal"))


#: Every kind this node understands, by its wire name.
KINDS: dict[str, Any] = {
    kind.KIND: kind
    for kind in (
        Transfer, Mint, Burn, IssueAsset, ApproveHolder, RevokeHolder, Freeze, Unfreeze,
        IssueBond, OpenOffering, Subscribe, CancelSubscription, SettleTrade, SpendProceeds,
        Propose, Approve,
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed instruction from one account."""

    #: The network this transaction is for; stops replay across networks.
    chain_id: str
    #: Public key of the signing account.
    sender: bytes
    #: The sender's next nonce; stops replay within the network.
    nonce: int
    #: What to do: one of the bodies in ``KINDS``.
    body: Body
    #: Ed25519 signature by ``sender`` over ``signing_payload()``.
    signature: bytes
    #: The canonical encoding (derived).
    encoded: bytes = field(init=False, repr=False, compare=False)
    #: SHA-256 of ``encoded``: the transaction's identity (derived).
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = codec.encode(
            [self.chain_id, self.sender, self.nonce, self.body.KIND, self.body.to_fields(), self.signature]
        )
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", sha256(encoded))

    @property
    def kind(self) -> str:
        return self.body.KIND

    def signing_payload(self) -> bytes:
        return signing_payload(self.chain_id, self.sender, self.nonce, self.body)

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Decode an encoded transaction; refuses anything but canonical bytes. Bytes
        decoded lately give the same object again (the hash is the cache key)."""
        digest = sha256(data)
        transaction = _RECENT.get(digest)
        if transaction is None:
            transaction = cls.from_fields(codec.decode(data, max_size=MAX_TRANSACTION_BYTES), "transaction")
            _RECENT.put(digest, transaction)
        return transaction

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Transaction:
        chain_id, sender, nonce, kind, body, signature = codec.read_fields(value, what, 6)
        kind = codec.read_str(kind, f"{what}.kind", max_length=32)
        body_type = KINDS.get(kind)
        if body_type is None:
            raise UnknownKind(f"{what}.kind: unknown transaction kind {kind!r}", kind=kind)
        return cls(
            codec.read_str(chain_id, f"{what}.chain_id", max_length=MAX_CHAIN_ID_LENGTH),
            codec.read_bytes(sender, f"{what}.sender", length=PUBLIC_KEY_SIZE),
            codec.read_int(nonce, f"{what}.nonce"),
            body_type.from_fields(body, f"{what}.body"),
            codec.read_bytes(signature, f"{what}.signature", length=SIGNATURE_SIZE),
        )


#: Transactions decoded lately: two blocks of the default proposal cap.
_RECENT: codec.RecentlyDecoded[Transaction] = codec.RecentlyDecoded(capacity=10_000)


def parties(transaction: Transaction) -> tuple[bytes, ...]:
    """The accounts a transaction concerns: its sender, then the account its body names
    (a recipient, the account a registrar acts on, or the registrar an issue names), once each."""
    body = transaction.body
    if isinstance(body, SettleTrade):
        return (transaction.sender, body.buyer if transaction.sender == body.seller else body.seller)
    if isinstance(body, Propose):
        # An issuer grant or revoke concerns its account; a validator change, the validators.
        change = body.change
        if isinstance(change, GrantIssuer | RevokeIssuer) and change.account != transaction.sender:
            return (transaction.sender, change.account)
        return (transaction.sender,)
    other = getattr(body, "recipient", None) or getattr(body, "account", None) or getattr(body, "registrar", None)
    # An issue names no registrar (b"") when its issuer is its own.
    if not other or other == transaction.sender:
        return (transaction.sender,)
    return (transaction.sender, other)


def signing_payload(chain_id: str, sender: bytes, nonce: int, body: Body) -> bytes:
    """The bytes a sender signs: every field but the signature, domain-tagged."""
    return codec.encode([_SIGNING_DOMAIN, chain_id, sender, nonce, body.KIND, body.to_fields()])


def trade_payload(chain_id: str, trade: SettleTrade) -> bytes:
    """The bytes both parties of a trade sign: its terms, domain-tagged, without any signature."""
    return codec.encode(
        [
            _TRADE_DOMAIN, chain_id, trade.bond, trade.seller, trade.buyer, trade.units, trade.amount,
            trade.deadline_ms, trade.reference,
        ]
    )  # fmt: skip


def paying_consent_payload(chain_id: str, issuer: bytes, bond: IssueBond) -> bytes:
    """The bytes a bond's paying account signs to agree to pay it: its terms, from its issuer."""
    return codec.encode([_PAYING_DOMAIN, chain_id, issuer, bond.terms_fields()])


def trade_id(chain_id: str, trade: SettleTrade) -> bytes:
    """A trade's identity: the hash of its signed terms (a trade settles once)."""
    return sha256(trade_payload(chain_id, trade))


def sign_transaction(key: SigningKey, *, chain_id: str, nonce: int, body: Body) -> Transaction:
    """Build and sign a transaction from ``key``'s account."""
    signature = key.sign(signing_payload(chain_id, key.public_key, nonce, body))
    return Transaction(chain_id, key.public_key, nonce, body, signature)


def decode_transaction_hex(text: str) -> Transaction:
    """Decode a transaction given as hex text, as wallets and the RPC send it."""
    try:
        data = bytes.fromhex(text.removeprefix("0x"))
    except (ValueError, AttributeError):
        raise DecodeError("transaction is not hex text") from None
    return Transaction.decode(data)
