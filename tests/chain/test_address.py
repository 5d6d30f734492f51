"""Tests for chain/address.py: Bech32m text addresses that refuse a typo."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mura.chain.address import decode_address, encode_address, validate_prefix
from mura.chain.errors import InvalidAddress

PREFIX = "nac"
KEY = bytes(range(32))
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M_CONSTANT = 0x2BC830A3

# Valid Bech32m strings from BIP-350. None holds a 32-byte key, so each must be
# refused, but never for its checksum.
BIP350_VALID = [
    ("abcdef", "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx"),
    ("split", "split1checkupstagehandshakeupstreamerranterredcaperredlc445v"),
    ("bc", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"),
    ("a", "a1lqfn3a"),
]


# --- an independent reference encoder (BIP-350's reference code) ---------------


def _reference_polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit in range(5):
            checksum ^= generator[bit] if (top >> bit) & 1 else 0
    return checksum


def _reference_expand(prefix: str) -> list[int]:
    return [ord(c) >> 5 for c in prefix] + [0] + [ord(c) & 31 for c in prefix]


def _reference_encode(prefix: str, data: bytes, *, constant: int = BECH32M_CONSTANT) -> str:
    bits = "".join(f"{byte:08b}" for byte in data)
    bits += "0" * (-len(bits) % 5)
    values = [int(bits[i : i + 5], 2) for i in range(0, len(bits), 5)]
    polymod = _reference_polymod(_reference_expand(prefix) + values + [0] * 6) ^ constant
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return prefix + "1" + "".join(CHARSET[v] for v in values + checksum)


def _address() -> str:
    return encode_address(KEY, PREFIX)


def _data_start(address: str) -> int:
    return address.rfind("1") + 1


# --- round trip ---------------------------------------------------------------------


def test_round_trip() -> None:
    address = _address()
    assert address.startswith("nac1")
    assert len(address) == len("nac1") + 52 + 6
    assert decode_address(address, PREFIX) == KEY


def test_reference_vectors_are_valid_bech32m() -> None:
    for prefix, address in BIP350_VALID:
        values = [CHARSET.index(c) for c in address[len(prefix) + 1 :]]
        assert _reference_polymod(_reference_expand(prefix) + values) == BECH32M_CONSTANT


def test_encoding_matches_the_bip350_reference() -> None:
    assert _address() == _reference_encode(PREFIX, KEY)


@pytest.mark.parametrize(("prefix", "address"), BIP350_VALID)
def test_invalid_valid_bech32m_without_a_32_byte_key(prefix: str, address: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        decode_address(address, prefix)
    assert "checksum" not in caught.value.message


def test_uppercase_accepted() -> None:
    assert decode_address(_address().upper(), PREFIX) == KEY


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.from_regex(r"[a-z0-9]{1,16}", fullmatch=True))
def test_round_trip_any_key_and_prefix(key: bytes, prefix: str) -> None:
    address = encode_address(key, prefix)
    assert address == _reference_encode(prefix, key)
    assert decode_address(address, prefix) == key
    assert decode_address(address.upper(), prefix) == key


def test_distinct_keys_give_distinct_addresses() -> None:
    assert encode_address(KEY, PREFIX) != encode_address(bytes(32), PREFIX)
    assert encode_address(KEY, PREFIX) != encode_address(KEY, "tnac")


# --- typos ----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 1, 25, 51, 52, 57])  # data start, middle, last data, checksum
def test_invalid_single_character_typo(offset: int) -> None:
    address = _address()
    position = _data_start(address) + offset
    for replacement in CHARSET.replace(address[position], ""):
        typo = address[:position] + replacement + address[position + 1 :]
        with pytest.raises(InvalidAddress, match="checksum"):
            decode_address(typo, PREFIX)


def test_invalid_swapped_neighbours() -> None:
    address = _address()
    refused = 0
    for position in range(_data_start(address), len(address) - 1):
        first, second = address[position], address[position + 1]
        if first == second:
            continue
        swapped = address[:position] + second + first + address[position + 2 :]
        with pytest.raises(InvalidAddress, match="checksum"):
            decode_address(swapped, PREFIX)
        refused += 1
    assert refused > 40


def test_invalid_bech32_not_bech32m_checksum() -> None:
    bech32 = _reference_encode(PREFIX, KEY, constant=1)
    with pytest.raises(InvalidAddress, match="checksum"):
        decode_address(bech32, PREFIX)


# --- malformed addresses --------------------------------------------------------------


def test_invalid_wrong_prefix() -> None:
    testnet = encode_address(KEY, "tnac")
    assert decode_address(testnet, "tnac") == KEY
    with pytest.raises(InvalidAddress, match="network 'tnac'"):
        decode_address(testnet, PREFIX)


def test_invalid_missing_prefix() -> None:
    address = _address()
    with pytest.raises(InvalidAddress, match="prefix"):
        decode_address(address[_data_start(address) :], PREFIX)
    with pytest.raises(InvalidAddress, match="prefix"):
        decode_address(address[_data_start(address) - 1 :], PREFIX)


def test_invalid_mixed_case() -> None:
    address = _address()
    position = _data_start(address) + 3
    mixed = address[:position] + address[position].upper() + address[position + 1 :]
    assert mixed != address
    with pytest.raises(InvalidAddress, match="mixes upper and lower case"):
        decode_address(mixed, PREFIX)
    with pytest.raises(InvalidAddress, match="mixes upper and lower case"):
        decode_address("NAC" + address[3:], PREFIX)


@pytest.mark.parametrize("character", ["b", "i", "o", "!", " ", "é"])
def test_invalid_bad_characters(character: str) -> None:
    address = _address()
    position = _data_start(address) + 10
    bad = address[:position] + character + address[position + 1 :]
    with pytest.raises(InvalidAddress, match="cannot appear"):
        decode_address(bad, PREFIX)


def test_invalid_too_short() -> None:
    with pytest.raises(InvalidAddress, match="too short"):
        decode_address("nac1qqqqq", PREFIX)
    address = _address()
    with pytest.raises(InvalidAddress):
        decode_address(address[:-1], PREFIX)
    # A correctly checksummed address of a 31-byte key is still refused.
    with pytest.raises(InvalidAddress, match="32-byte"):
        decode_address(_reference_encode(PREFIX, KEY[:31]), PREFIX)


def test_invalid_too_long() -> None:
    address = _address()
    with pytest.raises(InvalidAddress, match="limit is 90"):
        decode_address(address + "q" * (91 - len(address)), PREFIX)
    with pytest.raises(InvalidAddress, match="32-byte"):
        decode_address(_reference_encode(PREFIX, KEY + b"\x00"), PREFIX)


def test_invalid_not_text() -> None:
    with pytest.raises(InvalidAddress, match="text"):
        decode_address(_address().encode(), PREFIX)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "NAC", "n-c", "a" * 17, "ñac"])
def test_invalid_prefix_for_encoding(prefix: str) -> None:
    with pytest.raises(InvalidAddress, match="prefix"):
        validate_prefix(prefix)
    with pytest.raises(InvalidAddress):
        encode_address(KEY, prefix)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_invalid_key_size_for_encoding(size: int) -> None:
    with pytest.raises(InvalidAddress, match="32 bytes"):
        encode_address(bytes(size), PREFIX)
