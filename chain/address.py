"""Text addresses: Bech32m (BIP-350) over the 32-byte public key.

An address reads ``<prefix>1<data><checksum>``, e.g. ``nac1q...``. The prefix
names the network, so a testnet address is refused on the main network; the
checksum detects any error in up to four characters, so a typo is refused and
never paid.
"""

from __future__ import annotations

from mura.chain.errors import InvalidAddress
from mura.chain.keys import PUBLIC_KEY_SIZE

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {character: index for index, character in enumerate(_CHARSET)}
_BECH32M_CONSTANT = 0x2BC830A3
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_MAX_LENGTH = 90


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _expand_prefix(prefix: str) -> list[int]:
    return [ord(c) >> 5 for c in prefix] + [0] + [ord(c) & 31 for c in prefix]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int] | None:
    accumulator, bits, result = 0, 0, []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            result.append((accumulator >> bits) & max_value)
    if pad and bits:
        result.append((accumulator << (to_bits - bits)) & max_value)
    elif not pad and (bits >= from_bits or (accumulator << (to_bits - bits)) & max_value):
        return None
    return result


def validate_prefix(prefix: str) -> None:
    """A prefix is 1 to 16 lowercase letters or digits."""
    if not (1 <= len(prefix) <= 16 and prefix.isascii() and prefix.isalnum() and prefix == prefix.lower()):
        raise InvalidAddress(f"address prefix {prefix!r} must be 1-16 lowercase letters or digits")


def encode_address(public_key: bytes, prefix: str) -> str:
    """The text address of ``public_key`` on the network with ``prefix``."""
    validate_prefix(prefix)
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidAddress(f"a public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
    data = _convert_bits(public_key, 8, 5, pad=True)
    assert data is not None
    polymod = _polymod(_expand_prefix(prefix) + data + [0] * 6) ^ _BECH32M_CONSTANT
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return prefix + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_address(address: str, prefix: str) -> bytes:
    """The public key inside ``address``; refuses a wrong prefix, character or checksum."""
    if not isinstance(address, str):
        raise InvalidAddress(f"an address is text, got {type(address).__name__}")
    if len(address) > _MAX_LENGTH:
        raise InvalidAddress(f"address is {len(address)} characters, the limit is {_MAX_LENGTH}")
    if address.lower() != address and address.upper() != address:
        raise InvalidAddress("address mixes upper and lower case")
    address = address.lower()
    separator = address.rfind("1")
    if separator < 1:
        raise InvalidAddress(f"address {address!r} has no '{prefix}1' prefix")
    found_prefix, rest = address[:separator], address[separator + 1 :]
    if found_prefix != prefix:
        raise InvalidAddress(f"address is for network {found_prefix!r}, this network uses {prefix!r}")
    bad = sorted({c for c in rest if c not in _CHARSET_INDEX})
    if bad:
        raise InvalidAddress(f"address contains characters that cannot appear in an address: {''.join(bad)!r}")
    values = [_CHARSET_INDEX[c] for c in rest]
    if len(values) < 7:
        raise InvalidAddress("address is too short")
    if _polymod(_expand_prefix(prefix) + values) != _BECH32M_CONSTANT:
        raise InvalidAddress("address checksum does not match: it has a typo")
    public_key = _convert_bits(values[:-6], 5, 8, pad=False)
    if public_key is None or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidAddress("address does not hold a 32-byte public key")
    return bytes(public_key)
