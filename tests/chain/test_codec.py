"""Tests for chain/codec.py and the wire types' encode/decode.

Decoding untrusted bytes either returns a value whose re-encoding is exactly
those bytes, or raises ``DecodeError``: nothing else ever escapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mura.chain import codec
from mura.chain.assets import (
    MAX_ASSET_ID_LENGTH,
    MAX_ASSET_NAME_LENGTH,
    MAX_DECIMALS,
    AssetState,
    AssetTerms,
    TransferPolicy,
)
from mura.chain.block import Block, CommitCertificate, Header, transaction_root
from mura.chain.errors import DecodeError, UnknownKind
from mura.chain.governance import AddValidator, GrantIssuer, RemoveValidator, ReplaceKey, RevokeIssuer
from mura.chain.keys import SigningKey
from mura.chain.state import Account, Role
from mura.chain.transaction import (
    MAX_TRANSACTION_BYTES,
    Approve,
    ApproveHolder,
    Burn,
    Freeze,
    IssueAsset,
    Mint,
    Propose,
    RevokeHolder,
    Transaction,
    Transfer,
    Unfreeze,
    decode_transaction_hex,
    sign_transaction,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=150, deadline=None)

# --- strategies ------------------------------------------------------------------

chain_ids = st.text(max_size=64)
public_keys = st.binary(min_size=32, max_size=32)
hashes = st.binary(min_size=32, max_size=32)
signatures = st.binary(min_size=64, max_size=64)
unsigned = st.integers(min_value=0, max_value=codec.MAX_INT)
amounts = st.integers(min_value=codec.MIN_INT, max_value=codec.MAX_INT)

#: Any short text: the decoder leaves the asset id rules to the state transition.
asset_fields = st.text(max_size=64)
memos = st.text(max_size=300)

bodies_by_kind = {
    "transfer": st.builds(Transfer, asset_fields, public_keys, amounts, memos),
    "mint": st.builds(Mint, asset_fields, public_keys, amounts),
    "burn": st.builds(Burn, asset_fields, amounts),
    "issue_asset": st.builds(
        IssueAsset,
        asset_fields,
        st.text(max_size=80),
        unsigned,
        unsigned,
        st.booleans(),
        unsigned,
        st.just(b"") | public_keys,
        st.sampled_from(["open", "restricted", "other"]),
        unsigned,
    ),
    "approve_holder": st.builds(ApproveHolder, asset_fields, public_keys),
    "revoke_holder": st.builds(RevokeHolder, asset_fields, public_keys),
    "freeze": st.builds(Freeze, asset_fields, public_keys),
    "unfreeze": st.builds(Unfreeze, asset_fields, public_keys),
    "propose": st.builds(
        Propose,
        st.one_of(
            st.builds(AddValidator, public_keys, st.text(max_size=80), st.text(max_size=80)),
            st.builds(RemoveValidator, public_keys),
            st.builds(ReplaceKey, public_keys, public_keys, st.text(max_size=80)),
            st.builds(GrantIssuer, public_keys),
            st.builds(RevokeIssuer, public_keys),
        ),
    ),
    "approve": st.builds(Approve, unsigned),
}
bodies = st.one_of(*bodies_by_kind.values())


def transactions_of(body_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Transaction]:
    return st.builds(Transaction, chain_ids, public_keys, unsigned, body_strategy, signatures)


transactions = transactions_of(bodies)
headers = st.builds(Header, chain_ids, unsigned, hashes, unsigned, public_keys, hashes, hashes, hashes)
def _block_of(header: Header, body: list[Transaction]) -> Block:
    """A block whose header commits to ``body`` (any other is refused by decoding)."""
    return Block(replace(header, transaction_root=transaction_root(body)), tuple(body))


blocks = st.builds(_block_of, headers, st.lists(transactions, max_size=4))
certificates = st.builds(
    CommitCertificate,
    unsigned,
    unsigned,
    hashes,
    st.lists(st.integers(min_value=0, max_value=255), max_size=12, unique=True).flatmap(
        lambda indexes: st.tuples(*[st.tuples(st.just(index), signatures) for index in sorted(indexes)])
    ),
)
accounts = st.builds(Account, unsigned, st.sampled_from([Role(value) for value in range(4)]))
asset_terms = st.builds(
    AssetTerms,
    st.text(min_size=1, max_size=MAX_ASSET_ID_LENGTH),
    st.text(min_size=1, max_size=MAX_ASSET_NAME_LENGTH),
    st.integers(0, MAX_DECIMALS),
    public_keys,
    st.booleans(),
    unsigned,
    public_keys,
    st.sampled_from(list(TransferPolicy)),
    unsigned,
)
asset_states = st.builds(
    AssetState, unsigned, unsigned, st.booleans(), unsigned, st.booleans(), st.just(b"") | public_keys
)

WIRE_TYPES: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes], st.SearchStrategy[Any]]] = {
    "transaction": (Transaction.decode, lambda tx: tx.encoded, transactions),
    "block": (Block.decode, lambda block: block.encode(), blocks),
    "certificate": (CommitCertificate.decode, lambda certificate: certificate.encode(), certificates),
    "account": (Account.decode, lambda account: account.encode(), accounts),
    "asset_terms": (AssetTerms.decode, lambda terms: terms.encode(), asset_terms),
    "asset_state": (AssetState.decode, lambda state: state.encode(), asset_states),
}

WIRE_VALUE_TYPES = (int, bytes, str, bool, list, type(None))


def _key() -> SigningKey:
    return SigningKey.from_private_bytes(bytes(range(32)))


def _transfer() -> Transaction:
    return sign_transaction(_key(), chain_id="mura-test", nonce=3, body=Transfer("NAC", b"\x07" * 32, 250))


def _transaction_fields() -> list[Any]:
    return codec.decode(_transfer().encoded)  # type: ignore[no-any-return]


# --- canonical encoding -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 1),
        (127, 1),
        (128, 2),
        (255, 2),
        (256, 3),
        (65_535, 3),
        (65_536, 5),
        (2**32 - 1, 5),
        (2**32, 9),
        (codec.MAX_INT, 9),
        (-1, 1),
        (-32, 1),
        (-33, 2),
        (-128, 2),
        (-129, 3),
        (-(2**31), 5),
        (-(2**31) - 1, 9),
        (codec.MIN_INT, 9),
    ],
)
def test_integers_encode_in_their_shortest_form(value: int, size: int) -> None:
    encoded = codec.encode(value)
    assert len(encoded) == size
    assert codec.decode(encoded) == value


def test_encoding_is_canonical_for_each_wire_value() -> None:
    assert codec.encode(5) == b"\x05"
    assert codec.encode(b"ab") == b"\xc4\x02ab"  # bytes use the bin type
    assert codec.encode("ab") == b"\xa2ab"  # text uses the str type
    assert codec.encode(True) == b"\xc3"
    assert codec.encode((1, 2)) == codec.encode([1, 2]) == b"\x92\x01\x02"
    assert codec.decode(codec.encode([b"x", "y", [1, -1, True]])) == [b"x", "y", [1, -1, True]]


def test_transaction_encoding_is_the_documented_array() -> None:
    key = _key()
    tx = _transfer()
    body = ["NAC", b"\x07" * 32, 250, ""]
    assert codec.decode(tx.encoded) == ["mura-test", key.public_key, 3, "transfer", body, tx.signature]
    assert tx == Transaction.decode(tx.encoded)
    assert Transaction.decode(tx.encoded).hash == tx.hash


def test_decode_accepts_exactly_the_size_limit() -> None:
    encoded = codec.encode(b"x" * 100)
    assert codec.decode(encoded, max_size=len(encoded)) == b"x" * 100


def test_decode_transaction_hex_reads_wallet_text() -> None:
    tx = _transfer()
    assert decode_transaction_hex(tx.encoded.hex()) == tx
    assert decode_transaction_hex("0x" + tx.encoded.hex()) == tx


# --- each DecodeError case --------------------------------------------------------


def test_invalid_trailing_bytes() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode(b"\x05\x05")
    with pytest.raises(DecodeError, match="trailing"):
        Transaction.decode(_transfer().encoded + b"\x00")


def test_invalid_oversized_input() -> None:
    encoded = codec.encode(b"x" * 100)
    with pytest.raises(DecodeError, match="limit"):
        codec.decode(encoded, max_size=len(encoded) - 1)
    with pytest.raises(DecodeError, match=str(MAX_TRANSACTION_BYTES)):
        Transaction.decode(codec.encode(b"x" * MAX_TRANSACTION_BYTES))


def test_invalid_empty_input() -> None:
    with pytest.raises(DecodeError, match="empty"):
        codec.decode(b"")
    with pytest.raises(DecodeError):
        Transaction.decode(b"")


def test_invalid_truncated_input() -> None:
    encoded = _transfer().encoded
    for length in range(1, len(encoded)):
        with pytest.raises(DecodeError):
            Transaction.decode(encoded[:length])


def test_invalid_input_that_is_not_bytes() -> None:
    with pytest.raises(DecodeError, match="expected bytes"):
        codec.decode("\x05")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b"\xcc\x05",  # uint8
        b"\xcd\x00\x05",  # uint16
        b"\xce\x00\x00\x00\x05",  # uint32
        b"\xcf" + (5).to_bytes(8, "big"),  # uint64
        b"\xd0\x05",  # int8
        b"\xd1\x00\x05",  # int16
        b"\xd2\x00\x00\x00\x05",  # int32
        b"\xd3" + (5).to_bytes(8, "big"),  # int64
    ],
)
def test_invalid_non_canonical_integer(data: bytes) -> None:
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xd9\x02ab",  # str8 for a two-character string
        b"\xda\x00\x02ab",  # str16
        b"\xc5\x00\x02ab",  # bin16 for two bytes
        b"\xdc\x00\x01\x05",  # array16 for a one-item array
        b"\xd1\xff\xff",  # int16 for -1
    ],
)
def test_invalid_non_canonical_lengths(data: bytes) -> None:
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode(data)


def test_invalid_non_canonical_field_inside_a_transaction() -> None:
    encoded = _transfer().encoded
    # The nonce 3 is the one-byte 0x03 after the 32-byte sender; spell it as uint16.
    sender_end = encoded.index(_key().public_key) + 32
    assert encoded[sender_end : sender_end + 1] == b"\x03"
    longer = encoded[:sender_end] + b"\xcd\x00\x03" + encoded[sender_end + 1 :]
    with pytest.raises(DecodeError, match="canonical"):
        Transaction.decode(longer)


@pytest.mark.parametrize(
    "data", [b"\xca\x3f\xc0\x00\x00", b"\xcb" + b"\x3f\xf8" + bytes(6), b"\x92\x01\xcb" + bytes(8)]
)
def test_invalid_float(data: bytes) -> None:
    with pytest.raises(DecodeError, match="float"):
        codec.decode(data)


@pytest.mark.parametrize("data", [b"\x80", b"\x81\x01\x02", b"\x92\x01\x81\xa1a\x01", b"\xde\x00\x00"])
def test_invalid_map(data: bytes) -> None:
    with pytest.raises(DecodeError, match="map"):
        codec.decode(data)


@pytest.mark.parametrize("data", [b"\xd4\x01\x00", b"\xc7\x03\x05abc", b"\x91\xd5\x02\x00\x00"])
def test_invalid_extension_type(data: bytes) -> None:
    with pytest.raises(DecodeError, match="extension"):
        codec.decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xd6\xff" + bytes(4),  # timestamp 32: zero seconds
        b"\xd7\xff" + (1 << 34).to_bytes(8, "big"),  # timestamp 64: one nanosecond
        b"\x91\xd6\xff" + bytes(4),  # inside an array
    ],
)
def test_invalid_timestamp_extension_type(data: bytes) -> None:
    # Extension type -1 is msgpack's Timestamp, which msgpack decodes itself
    # instead of passing it to the extension hook; it is still an extension type.
    with pytest.raises(DecodeError):
        codec.decode(data)


def test_invalid_utf8_text() -> None:
    with pytest.raises(DecodeError, match="utf-8"):
        codec.decode(b"\xa2\xff\xfe")
    fields = _transaction_fields()
    encoded = codec.encode(fields)
    chain_id = codec.encode("mura-test")
    broken = encoded.replace(chain_id, chain_id[:1] + b"\xff" + chain_id[2:], 1)
    with pytest.raises(DecodeError):
        Transaction.decode(broken)


def test_invalid_field_count_missing_fields() -> None:
    with pytest.raises(DecodeError, match="missing fields"):
        codec.read_fields([1, 2], "thing", 3)
    with pytest.raises(DecodeError, match=r"transaction: expected 6 fields, got 5 \(missing fields\)"):
        Transaction.decode(codec.encode(_transaction_fields()[:5]))
    with pytest.raises(DecodeError, match=r"transaction\.body.*missing fields"):
        fields = _transaction_fields()
        Transaction.decode(codec.encode([*fields[:4], ["NAC", b"\x07" * 32], *fields[5:]]))


def test_invalid_field_count_unknown_extra_fields() -> None:
    with pytest.raises(DecodeError, match="unknown extra fields"):
        codec.read_fields([1, 2, 3, 4], "thing", 3)
    with pytest.raises(DecodeError, match=r"transaction: expected 6 fields, got 7 \(unknown extra fields\)"):
        Transaction.decode(codec.encode([*_transaction_fields(), 0]))
    account = codec.decode(Account(5, Role.ISSUER).encode())
    with pytest.raises(DecodeError, match="unknown extra fields"):
        Account.decode(codec.encode([*account, 0]))


@pytest.mark.parametrize(
    ("position", "value", "field"),
    [
        (0, b"mura-test", "transaction.chain_id"),  # bytes where text belongs
        (1, "sender", "transaction.sender"),  # text where bytes belong
        (1, b"\x01" * 31, "transaction.sender"),  # wrong length
        (2, b"\x03", "transaction.nonce"),
        (2, -1, "transaction.nonce"),  # below the minimum
        (3, 7, "transaction.kind"),
        (4, 5, "transaction.body"),
        (5, b"\x00" * 63, "transaction.signature"),
        (5, [], "transaction.signature"),
    ],
)
def test_invalid_wrong_type(position: int, value: Any, field: str) -> None:
    fields = _transaction_fields()
    fields[position] = value
    with pytest.raises(DecodeError, match=field.replace(".", r"\.")):
        Transaction.decode(codec.encode(fields))


def test_invalid_wrong_type_top_level() -> None:
    with pytest.raises(DecodeError, match="expected an array of 6 fields, got an integer"):
        Transaction.decode(codec.encode(5))
    with pytest.raises(DecodeError, match="expected an array"):
        Block.decode(codec.encode(b"block"))


def test_invalid_bool_where_int_expected() -> None:
    fields = _transaction_fields()
    fields[2] = True
    with pytest.raises(DecodeError, match=r"transaction\.nonce: expected an integer, got a boolean"):
        Transaction.decode(codec.encode(fields))
    fields = _transaction_fields()
    fields[4] = ["NAC", b"\x07" * 32, True, ""]
    with pytest.raises(DecodeError, match=r"transaction\.body\.amount: expected an integer, got a boolean"):
        Transaction.decode(codec.encode(fields))
    with pytest.raises(DecodeError, match="boolean"):
        codec.read_int(False, "x")


def test_invalid_unknown_kind_is_a_decode_error() -> None:
    fields = _transaction_fields()
    fields[3] = "stake"
    with pytest.raises(UnknownKind, match="stake") as caught:
        Transaction.decode(codec.encode(fields))
    assert isinstance(caught.value, DecodeError)
    assert caught.value.details == {"kind": "stake"}


def test_invalid_hex_text() -> None:
    with pytest.raises(DecodeError, match="hex"):
        decode_transaction_hex("not hex")


@pytest.mark.parametrize("name", sorted(WIRE_TYPES))
@pytest.mark.parametrize("depth", [400, 1000, 3000])
def test_invalid_deeply_nested_arrays(name: str, depth: int) -> None:
    # A few hundred bytes of nested arrays are a valid msgpack value but no
    # valid wire type: the decoder must refuse them with DecodeError, never
    # let a RecursionError (or anything else) escape.
    decode, _, _ = WIRE_TYPES[name]
    with pytest.raises(DecodeError):
        decode(b"\x91" * depth + b"\xc0")


@pytest.mark.parametrize("depth", [400, 1000, 3000])
def test_deeply_nested_arrays_decode_or_refuse(depth: int) -> None:
    data = b"\x91" * depth + b"\x01"
    try:
        value = codec.decode(data)
    except DecodeError:
        return
    assert codec.encode(value) == data


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(bodies_by_kind))
@ROUND_TRIP
@given(data=st.data())
def test_transaction_round_trip(kind: str, data: st.DataObject) -> None:
    tx = data.draw(transactions_of(bodies_by_kind[kind]))
    decoded = Transaction.decode(tx.encoded)
    assert decoded == tx
    assert decoded.kind == kind
    assert decoded.encoded == tx.encoded
    assert decoded.hash == tx.hash


@ROUND_TRIP
@given(headers)
def test_header_round_trip(header: Header) -> None:
    decoded = Header.from_fields(codec.decode(header.encoded), "header")
    assert decoded == header
    assert decoded.hash == header.hash


@ROUND_TRIP
@given(blocks)
def test_block_round_trip(block: Block) -> None:
    encoded = block.encode()
    decoded = Block.decode(encoded)
    assert decoded == block
    assert decoded.hash == block.hash
    assert decoded.encode() == encoded


@ROUND_TRIP
@given(certificates)
def test_certificate_round_trip(certificate: CommitCertificate) -> None:
    encoded = certificate.encode()
    assert CommitCertificate.decode(encoded) == certificate
    assert CommitCertificate.decode(encoded).encode() == encoded


@ROUND_TRIP
@given(accounts)
def test_account_round_trip(account: Account) -> None:
    assert Account.decode(account.encode()) == account


@ROUND_TRIP
@given(asset_terms)
def test_asset_terms_round_trip(terms: AssetTerms) -> None:
    assert AssetTerms.decode(terms.encode()) == terms


@ROUND_TRIP
@given(asset_states)
def test_asset_state_round_trip(state: AssetState) -> None:
    assert AssetState.decode(state.encode()) == state


@ROUND_TRIP
@given(st.recursive(st.integers(codec.MIN_INT, codec.MAX_INT) | st.binary() | st.text() | st.booleans(), st.lists))
def test_codec_round_trip_of_wire_values(value: Any) -> None:
    encoded = codec.encode(value)
    assert codec.decode(encoded) == value
    assert codec.encode(codec.decode(encoded)) == encoded


# --- untrusted bytes never raise anything but DecodeError -------------------------


def _check_decoder(name: str, data: bytes) -> None:
    decode, encode, _ = WIRE_TYPES[name]
    try:
        value = decode(data)
    except DecodeError:
        return
    except Exception as error:  # the point of the test: nothing else may escape
        pytest.fail(f"{name} decode raised {type(error).__name__}: {error!r} for {data.hex()}")
    assert encode(value) == data


@pytest.mark.parametrize("name", sorted(WIRE_TYPES))
@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_only_raise_decode_error(name: str, data: bytes) -> None:
    _check_decoder(name, data)


def _mutate(encoded: bytes, operation: str, position: int, byte: int) -> bytes:
    position %= len(encoded) + (operation == "insert")
    if operation == "flip":
        return encoded[:position] + bytes([encoded[position] ^ (byte or 1)]) + encoded[position + 1 :]
    if operation == "insert":
        return encoded[:position] + bytes([byte]) + encoded[position:]
    return encoded[:position] + encoded[position + 1 :]


@pytest.mark.parametrize("name", sorted(WIRE_TYPES))
@FUZZ
@given(data=st.data())
def test_mutated_encodings_only_raise_decode_error(name: str, data: st.DataObject) -> None:
    _, encode, strategy = WIRE_TYPES[name]
    encoded = encode(data.draw(strategy))
    mutations = data.draw(
        st.lists(
            st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)),
            min_size=1,
            max_size=3,
        )
    )
    for operation, position, byte in mutations:
        if encoded:
            encoded = _mutate(encoded, operation, position, byte)
    _check_decoder(name, encoded)


@FUZZ
@given(st.binary(max_size=200))
def test_codec_decode_of_random_bytes_returns_wire_values_or_refuses(data: bytes) -> None:
    try:
        value = codec.decode(data)
    except DecodeError:
        return
    except Exception as error:  # the point of the test: nothing else may escape
        pytest.fail(f"decode raised {type(error).__name__}: {error!r} for {data.hex()}")
    stack = [value]
    while stack:
        item = stack.pop()
        assert isinstance(item, WIRE_VALUE_TYPES) and not isinstance(item, float)
        if isinstance(item, list):
            stack.extend(item)
    assert codec.encode(value) == data


def test_recently_decoded_is_bounded_least_recently_used_first() -> None:
    recent: codec.RecentlyDecoded[str] = codec.RecentlyDecoded(capacity=2)
    recent.put(b"a", "A")
    recent.put(b"b", "B")
    assert recent.get(b"a") == "A"
    recent.put(b"c", "C")
    assert recent.get(b"b") is None
    assert (recent.get(b"a"), recent.get(b"c"), len(recent)) == ("A", "C", 2)
