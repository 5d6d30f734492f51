"""Tests for chain/transaction.py: the signed envelope and the body kinds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from mura.chain import codec
from mura.chain.block import commit_vote_payload
from mura.chain.errors import DecodeError, UnknownKind
from mura.chain.keys import SigningKey, sha256, verify_signature
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
    decode_transaction_hex,
    parties,
    sign_transaction,
    signing_payload,
)

CHAIN_ID = "mura-test"
RECIPIENT = b"\x07" * 32
ASSET = "NAC"
ISSUE = IssueAsset(ASSET, "Nishiawakura Coin", 2, 1_000, True, 0, b"", "open", 0)
#: One body of every kind.
BODIES: list[Body] = [
    Transfer(ASSET, RECIPIENT, 5, "invoice 12"),
    Mint(ASSET, RECIPIENT, 5),
    Burn(ASSET, 5),
    ISSUE,
    ApproveHolder(ASSET, RECIPIENT),
    RevokeHolder(ASSET, RECIPIENT),
    Freeze(ASSET, RECIPIENT),
    Unfreeze(ASSET, RECIPIENT),
    IssueBond(
        "NISHI-2031", "Forest road bond", 1_000, b"", "restricted", "JPYT", 10_000, 4_550, 2, 92,
        (1_800_000_000_000, 1_815_000_000_000), 1_815_000_000_000, 1_790_000_000_000, b"", RECIPIENT,
        "forest road repair", True,
    ),
    OpenOffering("NISHI-2031", 1_000, 10_000, 1_790_000_000_000, 1_791_000_000_000, 1, 100, 500),
    Subscribe("NISHI-2031", 10),
    CancelSubscription("NISHI-2031"),
    SettleTrade("NISHI-2031", RECIPIENT, b"\x08" * 32, 5, 50_000, 1_791_000_000_000, b"ref", b"\x01" * 64),
    SpendProceeds("NISHI-2031", RECIPIENT, 5, "gravel"),
]  # fmt: skip


@pytest.fixture
def alice(keys: Callable[[str], SigningKey]) -> SigningKey:
    return keys("alice")


def test_kinds_registry() -> None:
    assert KINDS == {
        "transfer": Transfer,
        "mint": Mint,
        "burn": Burn,
        "issue_asset": IssueAsset,
        "approve_holder": ApproveHolder,
        "revoke_holder": RevokeHolder,
        "freeze": Freeze,
        "unfreeze": Unfreeze,
        "issue_bond": IssueBond,
        "open_offering": OpenOffering,
        "subscribe": Subscribe,
        "cancel_subscription": CancelSubscription,
        "settle_trade": SettleTrade,
        "spend_proceeds": SpendProceeds,
        "propose": Propose,
        "approve": Approve,
    }
    assert all(kind.KIND == name for name, kind in KINDS.items())


@pytest.mark.parametrize("body", BODIES)
def test_sign_transaction_verifies(alice: SigningKey, body: Body) -> None:
    tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=4, body=body)
    assert tx.sender == alice.public_key
    assert tx.nonce == 4 and tx.chain_id == CHAIN_ID and tx.body == body
    assert tx.kind == body.KIND
    assert verify_signature(alice.public_key, tx.signature, tx.signing_payload())


def test_signing_payload_is_domain_tagged_fields(alice: SigningKey) -> None:
    body = Transfer(ASSET, RECIPIENT, 5)
    expected = codec.encode(
        ["mura/transaction/v1", CHAIN_ID, alice.public_key, 4, "transfer", [ASSET, RECIPIENT, 5, ""]]
    )
    assert signing_payload(CHAIN_ID, alice.public_key, 4, body) == expected
    tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=4, body=body)
    assert tx.signing_payload() == expected
    assert tx.signature not in tx.signing_payload()


@pytest.mark.parametrize(
    "other",
    [
        {"chain_id": "other-chain"},
        {"nonce": 5},
        {"body": Transfer(ASSET, b"\x08" * 32, 5)},
        {"body": Transfer(ASSET, RECIPIENT, 6)},
        {"body": Transfer("JPYT", RECIPIENT, 5)},
        {"body": Transfer(ASSET, RECIPIENT, 5, "memo")},
        {"body": Mint(ASSET, RECIPIENT, 5)},  # other fields, other kind
        {"body": Freeze(ASSET, RECIPIENT)},
        {"body": Unfreeze(ASSET, RECIPIENT)},  # same fields, other kind
    ],
)
def test_signing_payload_covers_every_field(alice: SigningKey, other: dict[str, object]) -> None:
    fields: dict[str, object] = {"chain_id": CHAIN_ID, "nonce": 4, "body": Transfer(ASSET, RECIPIENT, 5)}
    changed = {**fields, **other}
    assert signing_payload(sender=alice.public_key, **fields) != signing_payload(  # type: ignore[arg-type]
        sender=alice.public_key, **changed  # type: ignore[arg-type]
    )
    tx = sign_transaction(alice, **fields)  # type: ignore[arg-type]
    moved = dataclasses.replace(tx, **other)  # type: ignore[arg-type]
    assert not verify_signature(alice.public_key, moved.signature, moved.signing_payload())


def test_signing_payload_differs_from_a_commit_vote(alice: SigningKey) -> None:
    # A vote and a transaction are signed under different domain tags.
    vote = commit_vote_payload(CHAIN_ID, 4, 0, RECIPIENT)
    tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=4, body=Burn(ASSET, 5))
    assert codec.decode(vote)[0] != codec.decode(tx.signing_payload())[0]


def test_hash_and_encoding_are_derived(alice: SigningKey) -> None:
    tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=Burn(ASSET, 5))
    assert tx.encoded == codec.encode([CHAIN_ID, alice.public_key, 0, "burn", [ASSET, 5], tx.signature])
    assert tx.hash == sha256(tx.encoded)
    other_signature = dataclasses.replace(tx, signature=bytes(64))
    assert other_signature.hash != tx.hash
    assert other_signature != tx


def test_transactions_are_frozen(alice: SigningKey) -> None:
    tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=Burn(ASSET, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.nonce = 1  # type: ignore[misc]
    assert isinstance(tx.body, Burn)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx.body.amount = 1  # type: ignore[misc]


@pytest.mark.parametrize("amount", [0, -1, codec.MIN_INT, codec.MAX_INT])
def test_amounts_outside_the_rules_still_decode(alice: SigningKey, amount: int) -> None:
    # Zero and negative amounts are refused by the state transition under their
    # own rule, so the decoder must let them through.
    tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=Transfer(ASSET, RECIPIENT, amount))
    assert Transaction.decode(tx.encoded).body == Transfer(ASSET, RECIPIENT, amount)


def test_decode_round_trip_each_kind(alice: SigningKey) -> None:
    for nonce, body in enumerate(BODIES):
        tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=nonce, body=body)
        decoded = Transaction.decode(tx.encoded)
        assert decoded == tx and type(decoded.body) is type(body)
        assert decode_transaction_hex(tx.encoded.hex()) == tx


def test_invalid_unknown_kind(alice: SigningKey) -> None:
    fields = codec.decode(sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=Burn(ASSET, 5)).encoded)
    fields[3] = "stake"
    with pytest.raises(UnknownKind, match="'stake'") as caught:
        Transaction.decode(codec.encode(fields))
    assert isinstance(caught.value, DecodeError)


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("burn", [ASSET, 5, 6], "unknown extra fields"),
        ("burn", [], "missing fields"),
        ("burn", [5], "missing fields"),
        ("transfer", [ASSET, RECIPIENT, 5], "missing fields"),
        ("transfer", [ASSET, RECIPIENT[:31], 5, ""], r"transaction\.body\.recipient"),
        ("transfer", [ASSET, RECIPIENT, 5, b"memo"], r"transaction\.body\.memo"),
        ("transfer", [b"NAC", RECIPIENT, 5, ""], r"transaction\.body\.asset"),
        ("transfer", ["N" * 65, RECIPIENT, 5, ""], r"transaction\.body\.asset: 65 characters"),
        ("mint", [ASSET, RECIPIENT, "5"], r"transaction\.body\.amount"),
        ("mint", RECIPIENT, r"transaction\.body"),
        ("issue_asset", [ASSET, "Coin", 2, 10, True, 0, b"\x01", "open", 0], r"transaction\.body\.registrar"),
        ("issue_asset", [ASSET, "Coin", 2, 10, 1, 0, b"", "open", 0], r"transaction\.body\.reissuable"),
        ("issue_asset", [ASSET, "Coin", -1, 10, True, 0, b"", "open", 0], r"transaction\.body\.decimals"),
        ("issue_asset", [ASSET, "Coin", 2, 10, True, 0, b"", "open"], "missing fields"),
        ("freeze", [ASSET, "account"], r"transaction\.body\.account"),
        ("approve_holder", [ASSET], "missing fields"),
    ],
)
def test_invalid_body(alice: SigningKey, kind: str, body: object, message: str) -> None:
    fields = codec.decode(sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=Burn(ASSET, 5)).encoded)
    fields[3], fields[4] = kind, body
    with pytest.raises(DecodeError, match=message):
        Transaction.decode(codec.encode(fields))


def test_invalid_chain_id_too_long(alice: SigningKey) -> None:
    tx = sign_transaction(alice, chain_id="c" * 65, nonce=0, body=Burn(ASSET, 5))
    with pytest.raises(DecodeError, match=r"transaction\.chain_id"):
        Transaction.decode(tx.encoded)
    assert Transaction.decode(sign_transaction(alice, chain_id="c" * 64, nonce=0, body=Burn(ASSET, 5)).encoded)


def test_the_same_bytes_decode_to_the_same_transaction() -> None:
    key = SigningKey.from_private_bytes(b"\x05" * 32)
    encoded = sign_transaction(key, chain_id="mura-test", nonce=3, body=Transfer(ASSET, b"\x01" * 32, 9)).encoded
    first = Transaction.decode(encoded)
    assert Transaction.decode(bytes(encoded)) is first
    assert first.encoded == encoded


def test_fields_a_rule_bounds_still_decode(alice: SigningKey) -> None:
    """An asset id, a name, decimals, a policy or a memo that break a rule decode: the state
    transition refuses them by name (``invalid_asset_id``, ``invalid_asset_terms``, ``memo_too_long``)."""
    bodies: list[Body] = [
        Transfer("not an id", RECIPIENT, 5, "x" * 1_000),
        IssueAsset("nac", "", 99, 0, False, 5, b"", "closed", 1),
        Freeze("", RECIPIENT),
    ]
    for body in bodies:
        tx = sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=body)
        assert Transaction.decode(tx.encoded).body == body


def test_parties(alice: SigningKey) -> None:
    """The accounts a transaction concerns: its sender, then the account its body names, once each."""
    def of(body: Body) -> tuple[bytes, ...]:
        return parties(sign_transaction(alice, chain_id=CHAIN_ID, nonce=0, body=body))

    assert of(Transfer(ASSET, RECIPIENT, 5)) == (alice.public_key, RECIPIENT)
    assert of(Mint(ASSET, RECIPIENT, 5)) == (alice.public_key, RECIPIENT)
    assert of(Freeze(ASSET, RECIPIENT)) == (alice.public_key, RECIPIENT)
    assert of(Transfer(ASSET, alice.public_key, 5)) == (alice.public_key,)
    assert of(Burn(ASSET, 5)) == of(ISSUE) == (alice.public_key,)
    # An issue naming another registrar concerns it too; one naming the issuer itself, once.
    assert of(dataclasses.replace(ISSUE, registrar=RECIPIENT)) == (alice.public_key, RECIPIENT)
    assert of(dataclasses.replace(ISSUE, registrar=alice.public_key)) == (alice.public_key,)
