"""Equivocation evidence: two conflicting statements signed by one validator.

Both statements are kept whole, so anyone holding the validator set can check
the two signatures and see the conflict without trusting who reported it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mura.consensus.messages import Commit, Phase, Prepare, PrePrepare, ViewChange

Statement = PrePrepare | Prepare | Commit | ViewChange

_PHASES: dict[type[Statement], Phase] = {
    PrePrepare: Phase.PRE_PREPARE,
    Prepare: Phase.PREPARE,
    Commit: Phase.COMMIT,
    ViewChange: Phase.VIEW_CHANGE,
}


def phase_of(statement: Statement) -> Phase:
    return _PHASES[type(statement)]


@dataclass(frozen=True, slots=True)
class Equivocation:
    """``first`` and ``second`` are signed by one validator for the same view, height and
    phase, but state different things (different blocks, or different prepared certificates)."""

    first: Statement
    second: Statement

    @property
    def validator(self) -> int:
        return self.first.sender

    @property
    def height(self) -> int:
        return self.first.height

    @property
    def view(self) -> int:
        return self.first.view

    @property
    def phase(self) -> Phase:
        return phase_of(self.first)
