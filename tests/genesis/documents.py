"""Genesis documents for the loader's tests: a valid one to start from, ways to change
one field of it, and the problems the loader reports for a document."""

from __future__ import annotations

from typing import Any

import pytest

from mura.chain.address import encode_address
from mura.chain.errors import InvalidGenesis
from mura.chain.keys import SigningKey
from mura.genesis.format import parse_genesis

PREFIX = "tnac"
#: 2026-11-23T00:00:00Z
GENESIS_TIME_MS = 1_795_392_000_000
FOUNDERS = ["village-office", "token-association", "regional-chain-partner", "forestry-cooperative"]
#: Key numbers of the accounts with the issuer role.
TREASURY = 10
BANK = 11


def key(number: int) -> bytes:
    """A fixed public key per number, so that documents are reproducible."""
    return SigningKey.from_private_bytes(number.to_bytes(32, "big")).public_key


def address(number: int, prefix: str = PREFIX) -> str:
    return encode_address(key(number), prefix)


def nac_document(prefix: str = PREFIX) -> dict[str, Any]:
    """The village's coin as the testnet declares it: 1,000,000.00 NAC held by the treasury."""
    return {
        "id": "NAC",
        "name": "Nishiawakura Coin",
        "decimals": 2,
        "issuer": address(TREASURY, prefix),
        "supply": "reissuable",
        "policy": "open",
        "allocations": [{"address": address(TREASURY, prefix), "amount": 100_000_000}],
    }


def jpyt_document(prefix: str = PREFIX) -> dict[str, Any]:
    """The yen settlement token: 100,000,000 JPYT held by the bank."""
    return {
        "id": "JPYT",
        "name": "JPY Token",
        "decimals": 0,
        "issuer": address(BANK, prefix),
        "supply": "reissuable",
        "policy": "open",
        "allocations": [{"address": address(BANK, prefix), "amount": 100_000_000}],
    }


def valid_document() -> dict[str, Any]:
    """A fresh, valid genesis document: four validators, the treasury and the bank as
    issuers, and the assets NAC (the default) and JPYT."""
    return {
        "chain_id": "nishiawakura-testnet-1",
        "address_prefix": PREFIX,
        "genesis_time": "2026-11-23T00:00:00Z",
        "validators": [
            {"name": name, "public_key": key(index + 1).hex(), "peer_address": f"127.0.0.1:{9700 + index}"}
            for index, name in enumerate(FOUNDERS)
        ],
        "issuers": [address(TREASURY), address(BANK)],
        "assets": [nac_document(), jpyt_document()],
    }


def problems_of(document: object) -> list[str]:
    with pytest.raises(InvalidGenesis) as caught:
        parse_genesis(document)
    assert caught.value.problems, "InvalidGenesis must name at least one problem"
    return caught.value.problems


def parent_of(document: dict[str, Any], path: str) -> tuple[Any, str | int]:
    """The container holding the field at dotted ``path`` (``validators.0.name``), and its key."""
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    return target, int(last) if isinstance(target, list) else last


def with_field(path: str, value: object) -> dict[str, Any]:
    """``valid_document()`` with the field at ``path`` set to ``value``."""
    document = valid_document()
    container, name = parent_of(document, path)
    container[name] = value
    return document


def without_field(path: str) -> dict[str, Any]:
    document = valid_document()
    container, name = parent_of(document, path)
    del container[name]
    return document


def assert_problem(document: object, path: str, fragment: str = "") -> None:
    """``document`` is refused with a problem naming ``path`` (and saying ``fragment``)."""
    problems = problems_of(document)
    assert any(p.startswith(f"{path}: ") and fragment in p for p in problems), problems
