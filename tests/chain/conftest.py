"""Fixtures for the chain tests: the factories of ``factories``, as pytest hands them out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mura.chain.keys import SigningKey
from mura.chain.state import BuiltBlock
from mura.chain.transaction import Transaction
from mura.tests.chain import factories
from mura.tests.chain.factories import Chain


@pytest.fixture
def keys() -> Callable[[str], SigningKey]:
    """``keys(name)``: a deterministic signing key."""
    return factories.key_named


@pytest.fixture
def make_chain() -> Callable[..., Chain]:
    """``make_chain(allocations=[(name, amount)], rules=..., validator_count=4, terms={...}, assets=[...])``.

    Names are ``issuer``, ``alice`` and ``bob``; the issuer has the issuer role and
    issues ``NAC`` with the allocations (``terms`` changes its terms); ``assets``
    are more genesis assets.
    """
    return factories.make_chain


@pytest.fixture
def chain() -> Chain:
    """The default chain: four validators, the issuer holds 1,000,000 NAC and alice 1,000."""
    return factories.make_chain()


@pytest.fixture
def sign() -> Callable[..., Transaction]:
    """``sign(key, body, nonce=0, chain_id=CHAIN_ID)``: a signed transaction."""
    return factories.sign


@pytest.fixture
def make_block() -> Callable[..., BuiltBlock]:
    """``make_block(chain, transactions, timestamp_ms=..., proposer=..., rules=..., signatures=...)``.

    Builds the next block on ``chain.head`` with ``build_block``; does not commit it.
    """
    return factories.make_block
