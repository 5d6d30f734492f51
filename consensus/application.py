"""The application a replica orders blocks for.

The replica asks it to build a proposal, to validate a proposed block against
the last final state, and to load final blocks for peers that are behind.
When a block is final the replica emits ``CommitBlock``; the driver applies it
(store, mempool) and then tells the replica with ``Replica.committed``. The
node implements this over the LevelDB store and the mempool; the simulator over
``MemoryState``. Both use the chain's own ``build_block`` and ``apply_block``.
"""

from __future__ import annotations

from typing import Protocol

from mura.chain.block import Block, CommitCertificate
from mura.chain.state import BuiltBlock, StateChanges
from mura.consensus.messages import FinalBlock


class Application(Protocol):
    """The ledger as consensus sees it."""

    def final_height(self) -> int:
        """Height of the last final block (0 when only genesis exists)."""

    def validators_at(self, height: int) -> tuple[bytes, ...]:
        """The public keys of the validators that decide ``height``, in order. Exact for
        every height up to the one after the next (a change takes effect two heights after
        the block that approves it); for heights beyond that, the latest set known, which
        a change approved meanwhile may still replace."""

    def load_final_block(self, height: int) -> FinalBlock | None:
        """The final block at ``height`` with its commit certificate; None for genesis
        or a height not final here."""

    def load_certificate(self, height: int) -> CommitCertificate | None:
        """The commit certificate of the final block at ``height`` (None for genesis or a
        height not final here), without loading the block."""

    def build_proposal(self, height: int, *, proposer: bytes, timestamp_ms: int) -> BuiltBlock:
        """A block for ``height`` (the next one) on top of the last final block."""

    def has_pending_transactions(self) -> bool:
        """True when a proposal would carry transactions (the mempool is not empty)."""

    def has_full_block(self) -> bool:
        """True when enough transactions wait to fill a proposal: nothing is gained by
        gathering more first."""

    def next_due_ms(self) -> int | None:
        """The earliest time at which the final state has an automatic step due (an asset
        to lapse), or None: an idle primary proposes by then rather than after the idle
        interval, so what the chain does on its own happens on time."""

    def validate_block(self, block: Block, *, certified: bool = False) -> StateChanges:
        """The changes ``block`` makes on top of the last final block; raises an
        ``Invalid`` subclass if any rule refuses it. A ``certified`` block carries a
        verified commit certificate: a quorum already checked its transactions'
        signatures, so the application may skip them (the state root still binds it)."""
