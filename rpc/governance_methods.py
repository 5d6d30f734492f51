"""The ``governance_*`` methods: the proposals that change the validator set and the issuer
role, with their approvals, a page at a time.

They read only final state, through ``NodeView``. Proposals come by id (sequential from
1), at most ``limit`` a page, with a ``next_cursor`` (see ``params``).
"""

from __future__ import annotations

from typing import Any

from mura.chain.block import quorum_size
from mura.chain.governance import Proposal, ProposalStatus
from mura.chain.governance_rules import load_proposal, load_scheduled
from mura.chain.pending import OPEN_PROPOSAL_PREFIX, PROPOSAL_PREFIX
from mura.rpc.declarations import Method, Param, ParamInvalid, ParamType, Result
from mura.rpc.governance_render import PROPOSAL_SCHEMA, render_proposal
from mura.rpc.node_view import NodeView
from mura.rpc.params import cursor_param, limit_param

#: Proposals one page looks at when a status is asked for, per proposal returned: a page
#: may then hold fewer than ``limit`` (even none) before the last.
_SCAN_PER_ITEM = 8

PROPOSALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["proposals", "next_cursor"],
    "properties": {
        "proposals": {"type": "array", "items": PROPOSAL_SCHEMA, "description": "By id, oldest first."},
        "next_cursor": {
            "type": ["string", "null"],
            "description": "Pass it as cursor for the next page; null on the last page.",
        },
    },
}


def _check_status(value: Any) -> ProposalStatus:
    if not isinstance(value, str):
        raise ParamInvalid("expected a string: open, approved or expired")
    try:
        return ProposalStatus(value)
    except ValueError:
        names = ", ".join(status.value for status in ProposalStatus)
        raise ParamInvalid(f"a status is one of {names}, got {str(value)[:40]!r}") from None


STATUS = ParamType({"type": "string", "enum": [status.value for status in ProposalStatus]}, _check_status)


def _check_proposal_cursor(value: Any) -> int:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 19:
        raise ParamInvalid("not a cursor this node returned: expected a proposal id")
    return int(value)


class GovernanceMethods:
    """The ``governance_*`` handlers, reading through one ``NodeView``."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    async def get_proposals(self, status: ProposalStatus | None, cursor: int | None, limit: int) -> dict[str, Any]:
        """A page of proposals by id after ``cursor``, of ``status`` alone when given."""
        store = self._node.store
        after = (cursor or 0).to_bytes(8, "big")
        # Open proposals have an index of their own; the others are looked for among all.
        table = OPEN_PROPOSAL_PREFIX if status is ProposalStatus.OPEN else PROPOSAL_PREFIX
        scan = limit if status in {None, ProposalStatus.OPEN} else limit * _SCAN_PER_ITEM
        entries = store.load_entries_after(table, after, scan + 1)
        found: list[Proposal] = []
        for suffix, _ in entries[:scan]:
            proposal = load_proposal(store, int.from_bytes(suffix, "big"))
            assert proposal is not None, f"the state indexes proposal {suffix.hex()}, which it lacks"
            if status is None or proposal.status is status:
                found.append(proposal)
        more = len(entries) > scan
        last = int.from_bytes(entries[scan - 1][0], "big") if more else None
        return {
            "proposals": [self._render(proposal) for proposal in found],
            "next_cursor": None if last is None else str(last),
        }

    def _render(self, proposal: Proposal) -> dict[str, Any]:
        store = self._node.store
        validators = store.load_validators()
        scheduled = load_scheduled(store)
        names = dict(self._node.chain_info.validator_names)
        for record in (*validators, *(scheduled.validators if scheduled else ())):
            names[record.public_key] = record.name
        return render_proposal(proposal, names, quorum_size(len(validators)), self._node.address_prefix)

    def declarations(self) -> list[Method]:
        """The ``governance_*`` methods, declared for the engine and for ``rpc.discover``."""
        return [
            Method(
                name="governance_getProposals",
                handler=self.get_proposals,
                summary="Proposals to change the validator set or the issuer role, with their approvals, "
                "by id, a page at a time.",
                params=(
                    Param(
                        "status", STATUS, "Only proposals with this status: open, approved or expired.", required=False
                    ),
                    cursor_param(_check_proposal_cursor, "a proposal id"),
                    limit_param(),
                ),
                result=Result("proposals", PROPOSALS_SCHEMA, "A page of proposals and the cursor of the next."),
                description="A change approved in block h decides heights from h + 2 (activation_height); "
                "a proposal expires at expires_height unless approved before. With the status approved or "
                "expired, a page may hold fewer proposals than the limit, even none, before the last: go on "
                "until next_cursor is null.",
            ),
        ]
