"""Checking blocks as a validator would, for the tests of the state transition.

A block is applied with a fresh ``SignatureCache``, as by a validator that has
not seen its transactions, so every signature is really checked; a refusal is
checked to be exactly the expected typed error and to leave the committed state
as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from mura.chain.block import Block, Header, transaction_root
from mura.chain.errors import InvalidBlock, InvalidBlockTransaction, InvalidTransaction
from mura.chain.keys import SignatureCache
from mura.chain.state import BuiltBlock, ChainRules, MemoryState, StateChanges, apply_block
from mura.chain.state_root import LatticeHash
from mura.tests.chain.factories import BLOCK_INTERVAL_MS, Chain

Sign = Callable[..., Any]
MakeBlock = Callable[..., BuiltBlock]


def apply(chain: Chain, block: Block, *, rules: ChainRules | None = None) -> StateChanges:
    """Apply ``block`` on ``chain.head`` as a validator that never saw its transactions."""
    return apply_block(chain.state, chain.head, block, rules=rules or chain.rules, signatures=SignatureCache())


def raw_block(chain: Chain, transactions: Sequence[Any], **header_changes: Any) -> Block:
    """The next block with ``transactions`` and a correct transaction root but a zero state root."""
    header = Header(
        chain_id=chain.rules.chain_id,
        height=chain.head.height + 1,
        parent_hash=chain.head.hash,
        timestamp_ms=chain.head.timestamp_ms + BLOCK_INTERVAL_MS,
        proposer=chain.validators[0].public_key,
        transaction_root=transaction_root(transactions),
        state_root=bytes(32),
        next_validators_hash=chain.head.next_validators_hash,
    )
    return Block(replace(header, **header_changes), tuple(transactions))


def with_header(block: Block, **header_changes: Any) -> Block:
    return Block(replace(block.header, **header_changes), block.transactions)


def accept(chain: Chain, built: BuiltBlock) -> StateChanges:
    """Check ``built`` as another validator would, then commit it."""
    changes = apply(chain, built.block)
    assert changes == built.changes
    chain.commit((built.block, changes))
    return changes


def refuse_block(
    chain: Chain, block: Block, error: type[InvalidBlock], *, rules: ChainRules | None = None
) -> InvalidBlock:
    """``apply_block`` raises exactly ``error`` and the committed state is untouched."""
    before = chain.snapshot()
    with pytest.raises(InvalidBlock) as caught:
        apply(chain, block, rules=rules)
    assert type(caught.value) is error, caught.value
    assert chain.snapshot() == before
    return caught.value


def refuse_transaction(
    chain: Chain,
    make_block: MakeBlock,
    transaction: Any,
    error: type[InvalidTransaction],
    *,
    before: Sequence[Any] = (),
    timestamp_ms: int | None = None,
) -> InvalidTransaction:
    """A block holding ``transaction`` (after the valid ``before``) is refused with
    ``InvalidBlockTransaction`` caused by exactly ``error``; nothing changes; and
    ``build_block`` leaves the transaction out, reporting the same rule. ``timestamp_ms``:
    the block's time (the next block interval when not given)."""
    header_changes = {} if timestamp_ms is None else {"timestamp_ms": timestamp_ms}
    block = raw_block(chain, [*before, transaction], **header_changes)
    refused = refuse_block(chain, block, InvalidBlockTransaction)
    assert isinstance(refused, InvalidBlockTransaction)
    assert type(refused.cause) is error, refused.cause
    assert refused.index == len(before)
    assert refused.details["cause"] == error.rule
    assert refused.details["cause_details"] == refused.cause.details
    snapshot = chain.snapshot()
    built = make_block(chain, [*before, transaction], signatures=SignatureCache(), timestamp_ms=timestamp_ms)
    assert built.block.transactions == tuple(before)
    assert [(tx, type(reason)) for tx, reason in built.refused] == [(transaction, error)]
    assert chain.snapshot() == snapshot
    return refused.cause


def lattice_from_scratch(state: MemoryState) -> LatticeHash:
    """The lattice hash recomputed from every entry of ``state``."""
    lattice = LatticeHash()
    for key, value in state.entries.items():
        lattice = lattice.add(LatticeHash.of_entry(key, value))
    return lattice
