"""The chain's param types: addresses, hashes, block ids and signed transactions.

Each checks a JSON value and converts it into what a handler wants, so a
handler sees public keys and hash bytes, never text it must parse again. Bytes
travel as ``0x``-prefixed hex; accounts as text addresses with the network's
prefix, whose checksum refuses a typo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mura.chain.address import decode_address
from mura.chain.errors import Invalid
from mura.chain.transaction import MAX_TRANSACTION_BYTES, Transaction, decode_transaction_hex
from mura.rpc.declarations import STRING, ParamInvalid, ParamType, format_number, json_type_name

_ADDRESS_CHARACTERS = "023456789acdefghjklmnpqrstuvwxyz"
_HASH_TEXT = re.compile(r"0x[0-9a-fA-F]{64}")

#: A 32-byte hash as the RPC writes it.
HASH_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
#: The largest height a param may name: the codec's integers are 64-bit.
MAX_HEIGHT = 2**63 - 1


def to_hex(data: bytes) -> str:
    """Bytes as the RPC writes them: ``0x`` and lowercase hex."""
    return "0x" + data.hex()


def address_type(prefix: str) -> ParamType:
    """A text address on the network with ``prefix``, converted to its public key."""

    def check(value: Any) -> bytes:
        text = STRING.check(value)
        try:
            return decode_address(text, prefix)
        except Invalid as error:
            raise ParamInvalid(error.message, rule=error.rule) from None

    pattern = f"^{prefix}1[{_ADDRESS_CHARACTERS}]{{58}}$"
    return ParamType({"type": "string", "pattern": pattern}, check)


def _check_hash(value: Any) -> bytes:
    text = STRING.check(value)
    if not _HASH_TEXT.fullmatch(text):
        raise ParamInvalid(f"expected 0x and 64 hex digits, got {len(text)} characters")
    return bytes.fromhex(text[2:])


#: A block or transaction hash, converted to its 32 bytes (upper-case hex is accepted).
HASH = ParamType({"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}, _check_hash)


@dataclass(frozen=True, slots=True)
class BlockId:
    """A block named by its height or by its hash: exactly one is set."""

    height: int | None = None
    hash: bytes | None = None

    def describe(self) -> dict[str, Any]:
        """The id as error ``data`` shows it."""
        return {"height": self.height} if self.hash is None else {"hash": to_hex(self.hash)}


def _check_block_id(value: Any) -> BlockId:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_HEIGHT:
            raise ParamInvalid(f"a height is from 0 to {MAX_HEIGHT}, got {format_number(value)}")
        return BlockId(height=value)
    if isinstance(value, str):
        return BlockId(hash=_check_hash(value))
    raise ParamInvalid(f"expected a height (integer) or a block hash (0x string), got {json_type_name(value)}")


#: A block's height (integer) or hash (``0x`` string).
BLOCK_ID = ParamType(
    {"oneOf": [{"type": "integer", "minimum": 0, "maximum": MAX_HEIGHT}, dict(HASH.schema)]},
    _check_block_id,
)


def _check_transaction_hex(value: Any) -> Transaction:
    text = STRING.check(value)
    try:
        return decode_transaction_hex(text)
    except Invalid as error:
        raise ParamInvalid(error.message, rule=error.rule) from None


#: A signed transaction's canonical encoding in hex (``0x`` optional), decoded.
TRANSACTION_HEX = ParamType(
    {"type": "string", "pattern": "^(0x)?([0-9a-fA-F]{2})+$", "maxLength": 2 + 2 * MAX_TRANSACTION_BYTES},
    _check_transaction_hex,
)
