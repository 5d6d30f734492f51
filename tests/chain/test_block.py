"""Tests for chain/block.py: the Merkle root, a block's body bound to its header,
quorums and commit certificates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mura.chain import codec
from mura.chain.block import (
    Block,
    CommitCertificate,
    Header,
    commit_vote_payload,
    merkle_root,
    quorum_size,
    transaction_root,
    verify_certificate,
)
from mura.chain.errors import DecodeError, InvalidCertificate, TransactionRootMismatch
from mura.chain.keys import SigningKey, sha256
from mura.chain.transaction import Transaction, Transfer, sign_transaction

CHAIN_ID = "mura-test"
HEIGHT = 7
VIEW = 2
BLOCK_HASH = sha256(b"block 7")


# --- merkle root --------------------------------------------------------------------


def _rfc6962(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 section 2.1, written recursively as the RFC states it."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return sha256(b"\x01" + _rfc6962(leaves[:split]) + _rfc6962(leaves[split:]))


def _leaves(count: int) -> list[bytes]:
    return [sha256(bytes([index])) for index in range(count)]


def test_merkle_root_of_nothing() -> None:
    assert merkle_root([]) == sha256(b"")
    assert transaction_root(()) == sha256(b"")


def test_merkle_root_of_one_is_its_leaf_hash() -> None:
    leaf = b"only"
    assert merkle_root([leaf]) == sha256(b"\x00" + leaf)
    assert merkle_root([leaf]) != leaf


def test_merkle_root_of_two() -> None:
    a, b = b"a", b"b"
    assert merkle_root([a, b]) == sha256(b"\x01" + sha256(b"\x00" + a) + sha256(b"\x00" + b))


@pytest.mark.parametrize("count", [3, 5, 6, 7, 9, 11, 13, 17])
def test_merkle_root_odd_and_uneven_counts_match_rfc6962(count: int) -> None:
    assert merkle_root(_leaves(count)) == _rfc6962(_leaves(count))


def test_merkle_root_of_three_promotes_the_odd_leaf() -> None:
    a, b, c = (sha256(b"\x00" + leaf) for leaf in (b"a", b"b", b"c"))
    assert merkle_root([b"a", b"b", b"c"]) == sha256(b"\x01" + sha256(b"\x01" + a + b) + c)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=40))
def test_merkle_root_matches_rfc6962(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == _rfc6962(leaves)


def test_merkle_root_order_matters() -> None:
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"c", b"b"])


def test_merkle_root_does_not_duplicate_the_odd_leaf() -> None:
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])
    assert merkle_root([b"a"]) != merkle_root([b"a", b"a"])


def test_merkle_root_leaf_is_not_an_inner_node() -> None:
    a, b = sha256(b"\x00" + b"a"), sha256(b"\x00" + b"b")
    assert merkle_root([a + b]) != merkle_root([b"a", b"b"])


def test_transaction_root_is_over_transaction_hashes() -> None:
    key = SigningKey.from_private_bytes(bytes(32))
    body = Transfer("NAC", bytes(32), 1)
    txs = [sign_transaction(key, chain_id=CHAIN_ID, nonce=n, body=body) for n in range(3)]
    assert transaction_root(txs) == merkle_root([tx.hash for tx in txs])


# --- headers and blocks ------------------------------------------------------------


def _header(**changes: object) -> Header:
    header = Header(CHAIN_ID, 1, bytes(32), 1000, bytes(32), sha256(b""), bytes(32), bytes(32))
    return replace(header, **changes)  # type: ignore[arg-type]


def test_block_hash_is_the_header_hash() -> None:
    header = _header()
    assert Block(header, ()).hash == header.hash == sha256(header.encoded)
    assert Block(header, ()).height == 1


def _transfers(count: int, *, amount: int = 1) -> list[Transaction]:
    key = SigningKey.from_private_bytes(bytes(32))
    body = Transfer("NAC", bytes(32), amount)
    return [sign_transaction(key, chain_id=CHAIN_ID, nonce=n, body=body) for n in range(count)]


def _swapped_body(header_of: Sequence[Transaction], body: Sequence[Transaction]) -> bytes:
    """The bytes of a block whose header commits to ``header_of`` but which carries ``body``."""
    header = _header(transaction_root=transaction_root(header_of))
    return codec.encode([header.to_fields(), [transaction.encoded for transaction in body]])


def test_block_decodes_when_its_body_matches_its_header() -> None:
    transactions = _transfers(3)
    data = _swapped_body(transactions, transactions)
    block = Block.decode(data)
    assert block.transactions == tuple(transactions)
    assert block.encode() == data


@pytest.mark.parametrize(
    "body",
    [
        lambda txs: [*txs[:2], _transfers(3, amount=2)[2]],  # one transaction forged
        lambda txs: txs[:2],  # one left out
        lambda txs: [txs[1], txs[0], txs[2]],  # reordered
        lambda txs: [],  # emptied
        lambda txs: [*txs, _transfers(4, amount=3)[3]],  # one added
    ],
    ids=["forged", "dropped", "reordered", "emptied", "added"],
)
def test_invalid_block_whose_body_is_not_its_headers(body: Callable[[list[Transaction]], list[Transaction]]) -> None:
    transactions = _transfers(3)
    with pytest.raises(TransactionRootMismatch) as refused:
        Block.decode(_swapped_body(transactions, body(transactions)))
    assert isinstance(refused.value, DecodeError)
    assert refused.value.rule == "transaction_root_mismatch"


def test_invalid_body_is_refused_before_its_transactions_are_decoded() -> None:
    """A forged body is refused from its raw bytes: even undecodable transactions do not
    cost a decode (and do not change the answer)."""
    transactions = _transfers(2)
    header = _header(transaction_root=transaction_root(transactions))
    data = codec.encode([header.to_fields(), [b"not a transaction", b"nor this"]])
    with pytest.raises(TransactionRootMismatch):
        Block.decode(data)


def test_block_built_in_memory_checks_its_body_once() -> None:
    transactions = _transfers(2)
    good = Block(_header(transaction_root=transaction_root(transactions)), tuple(transactions))
    good.check_body()
    assert good.body_checked
    forged = Block(good.header, tuple(_transfers(2, amount=5)))
    with pytest.raises(TransactionRootMismatch):
        forged.check_body()
    assert not forged.body_checked


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": "other"},
        {"height": 2},
        {"parent_hash": b"\x01" * 32},
        {"timestamp_ms": 1001},
        {"proposer": b"\x01" * 32},
        {"transaction_root": b"\x01" * 32},
        {"state_root": b"\x01" * 32},
    ],
)
def test_every_header_field_changes_the_hash(change: dict[str, object]) -> None:
    assert _header(**change).hash != _header().hash


# --- quorum size ---------------------------------------------------------------------


def _brute_force_quorum(n: int) -> int:
    faulty = (n - 1) // 3
    return min(q for q in range(1, n + 1) if 2 * q - n > faulty)


@pytest.mark.parametrize("n", range(1, 11))
def test_quorum_size_matches_the_definition(n: int) -> None:
    assert quorum_size(n) == _brute_force_quorum(n)


def test_quorum_size_known_values() -> None:
    assert [quorum_size(n) for n in (1, 4, 7, 10)] == [1, 3, 5, 7]


def test_quorum_size_up_to_the_validator_limit() -> None:
    for n in range(1, 257):
        q = quorum_size(n)
        assert q == _brute_force_quorum(n)
        assert q <= n - (n - 1) // 3  # the honest validators alone can form a quorum


@pytest.mark.parametrize("n", [0, -1])
def test_invalid_quorum_size_without_validators(n: int) -> None:
    with pytest.raises(ValueError):
        quorum_size(n)


# --- commit certificates -------------------------------------------------------------


@pytest.fixture
def validators(keys: Callable[[str], SigningKey]) -> list[SigningKey]:
    return [keys(f"validator-{index}") for index in range(4)]


def _public(validators: Sequence[SigningKey]) -> list[bytes]:
    return [key.public_key for key in validators]


def _vote(key: SigningKey, *, view: int = VIEW, height: int = HEIGHT, block_hash: bytes = BLOCK_HASH) -> bytes:
    return key.sign(commit_vote_payload(CHAIN_ID, height, view, block_hash))


def _certificate(validators: Sequence[SigningKey], indexes: Sequence[int], **vote: object) -> CommitCertificate:
    signatures = tuple((index, _vote(validators[index], **vote)) for index in indexes)  # type: ignore[arg-type]
    return CommitCertificate(HEIGHT, VIEW, BLOCK_HASH, signatures)


def _verify(certificate: CommitCertificate, validators: Sequence[SigningKey], **expected: object) -> None:
    arguments: dict[str, object] = {"chain_id": CHAIN_ID, "height": HEIGHT, "block_hash": BLOCK_HASH}
    arguments.update(expected)
    verify_certificate(certificate, validators=_public(validators), **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("indexes", [(0, 1, 2), (1, 2, 3), (0, 2, 3), (0, 1, 2, 3)])
def test_certificate_with_a_quorum(validators: list[SigningKey], indexes: tuple[int, ...]) -> None:
    certificate = _certificate(validators, indexes)
    _verify(certificate, validators)
    _verify(CommitCertificate.decode(certificate.encode()), validators)


def test_certificate_with_a_single_validator(keys: Callable[[str], SigningKey]) -> None:
    solo = [keys("solo")]
    _verify(_certificate(solo, [0]), solo)


def test_invalid_certificate_too_few_signatures(validators: list[SigningKey]) -> None:
    with pytest.raises(InvalidCertificate, match="2 signatures, a quorum is 3"):
        _verify(_certificate(validators, [0, 3]), validators)
    with pytest.raises(InvalidCertificate, match="0 signatures"):
        _verify(_certificate(validators, []), validators)


def test_invalid_certificate_duplicate_validator(validators: list[SigningKey]) -> None:
    with pytest.raises(InvalidCertificate, match="strictly increasing"):
        _verify(_certificate(validators, [0, 1, 1]), validators)
    with pytest.raises(InvalidCertificate, match="strictly increasing"):
        _verify(_certificate(validators, [0, 0, 0, 0]), validators)


def test_invalid_certificate_negative_index_counts_a_validator_twice(validators: list[SigningKey]) -> None:
    # Index -4 names validators[-4], which is validator 0 again: three entries,
    # only two validators. A certificate built in memory (not decoded) must
    # still be refused.
    signatures = ((-4, _vote(validators[0])), (0, _vote(validators[0])), (1, _vote(validators[1])))
    with pytest.raises(InvalidCertificate):
        _verify(CommitCertificate(HEIGHT, VIEW, BLOCK_HASH, signatures), validators)


def test_invalid_certificate_unsorted_indexes(validators: list[SigningKey]) -> None:
    with pytest.raises(InvalidCertificate, match="strictly increasing"):
        _verify(_certificate(validators, [2, 0, 1]), validators)


def test_invalid_certificate_index_out_of_range(
    validators: list[SigningKey], keys: Callable[[str], SigningKey]
) -> None:
    extra = [*validators, keys("outsider")]
    certificate = _certificate(extra, [0, 1, 4])  # signed by a fifth key the set does not hold
    with pytest.raises(InvalidCertificate, match="the set has 4"):
        _verify(certificate, validators)


def test_invalid_certificate_wrong_signature(validators: list[SigningKey], keys: Callable[[str], SigningKey]) -> None:
    certificate = _certificate(validators, [0, 1, 2])
    forged = (certificate.signatures[0], certificate.signatures[1], (2, _vote(keys("outsider"))))
    with pytest.raises(InvalidCertificate, match="validator 2 does not verify") as caught:
        _verify(replace(certificate, signatures=forged), validators)
    assert caught.value.details == {"validator": 2}
    swapped = ((0, certificate.signatures[1][1]), (1, certificate.signatures[0][1]), certificate.signatures[2])
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify(replace(certificate, signatures=swapped), validators)


def test_invalid_certificate_signature_for_another_view(validators: list[SigningKey]) -> None:
    certificate = _certificate(validators, [0, 1, 2], view=VIEW + 1)
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify(certificate, validators)
    # The same votes do prove the block final when the certificate names their view.
    _verify(replace(certificate, view=VIEW + 1), validators)


def test_invalid_certificate_signature_for_another_chain(validators: list[SigningKey]) -> None:
    certificate = _certificate(validators, [0, 1, 2])
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify(certificate, validators, chain_id="other-chain")


def test_invalid_certificate_wrong_height(validators: list[SigningKey]) -> None:
    certificate = _certificate(validators, [0, 1, 2])
    with pytest.raises(InvalidCertificate, match="expected height 8"):
        _verify(certificate, validators, height=HEIGHT + 1)
    # Votes signed for another height do not verify even if the certificate claims this one.
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify(_certificate(validators, [0, 1, 2], height=HEIGHT + 1), validators)


def test_invalid_certificate_wrong_hash(validators: list[SigningKey]) -> None:
    certificate = _certificate(validators, [0, 1, 2])
    with pytest.raises(InvalidCertificate, match="certificate is for"):
        _verify(certificate, validators, block_hash=sha256(b"another block"))
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify(_certificate(validators, [0, 1, 2], block_hash=sha256(b"another block")), validators)
