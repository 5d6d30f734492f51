"""``governance_getProposals`` and ``chain_validators(height)`` against a real node.

The test node is a network of one validator: its own proposal is a quorum, so each is
approved in the block that carries it and takes effect two heights on.
"""

from __future__ import annotations

from mura.chain.governance import AddValidator, GrantIssuer
from mura.chain.keys import SigningKey
from mura.chain.transaction import Approve, Propose

from .support import TestNode

NEW = SigningKey.from_private_bytes(bytes(range(5, 37)))
ALICE = SigningKey.from_private_bytes(bytes(range(32)))


def as_hex(data: bytes) -> str:
    return "0x" + data.hex()


async def test_proposals_and_the_validator_set_by_height(node: TestNode) -> None:
    add = AddValidator(NEW.public_key, "new-office", "127.0.0.1:9799")
    final = await node.finalize(node.sign(Propose(add), key=node.validator))
    height = final["block_height"]
    page = await node.checked("governance_getProposals")
    assert page["next_cursor"] is None
    (proposal,) = page["proposals"]
    assert proposal == {
        "id": 1,
        "proposer": as_hex(node.validator.public_key),
        "proposer_name": "village-office",
        "change": {"kind": "add_validator", "public_key": as_hex(NEW.public_key), "name": "new-office",
                   "address": "127.0.0.1:9799"},
        "approvals": [{"public_key": as_hex(node.validator.public_key), "name": "village-office"}],
        "quorum": 1,
        "created_height": height,
        "expires_height": height + node.node.rules.proposal_lifetime_blocks,
        "status": "approved",
        "activation_height": height + 2,
    }  # fmt: skip
    before = await node.checked("chain_validators", {"height": height + 1})
    after = await node.checked("chain_validators", {"height": height + 2})
    assert [validator["name"] for validator in before["validators"]] == ["village-office"]
    assert before["height"] == height + 1 and (before["quorum"], after["quorum"]) == (1, 2)
    assert after["validators"][1] == {
        "index": 1,
        "name": "new-office",
        "address": node.address(NEW),
        "public_key": as_hex(NEW.public_key),
        "peer_address": "127.0.0.1:9799",
    }
    assert (await node.rpc.result("chain_validators", [1]))["validators"] == before["validators"]


async def test_validators_default_to_the_next_height_and_refuse_unknown_heights(node: TestNode) -> None:
    current = await node.checked("chain_validators")
    assert current["height"] >= 1 and current["validators"][0]["name"] == "village-office"
    for height in (0, 10**12):
        error = await node.rpc.error("chain_validators", [height])
        assert error["code"] == -32027 and error["data"]["height"] == height
        assert error["data"]["known_up_to"] == error["data"]["head"] + 2
        assert error["message"] == "Validator set not known"


async def test_proposals_by_status_a_page_at_a_time(node: TestNode) -> None:
    await node.finalize(node.sign(Propose(GrantIssuer(ALICE.public_key)), key=node.validator))
    await node.finalize(
        node.sign(Propose(AddValidator(NEW.public_key, "new-office", "127.0.0.1:9799")), key=node.validator)
    )
    first = await node.checked("governance_getProposals", {"limit": 1})
    assert [proposal["id"] for proposal in first["proposals"]] == [1] and first["next_cursor"] == "1"
    assert first["proposals"][0]["change"] == {
        "kind": "grant_issuer", "account": node.address(ALICE), "public_key": as_hex(ALICE.public_key),
    }  # fmt: skip
    second = await node.checked("governance_getProposals", {"limit": 1, "cursor": first["next_cursor"]})
    assert [proposal["id"] for proposal in second["proposals"]] == [2] and second["next_cursor"] is None
    assert (await node.checked("governance_getProposals", {"status": "open"}))["proposals"] == []
    approved = await node.checked("governance_getProposals", {"status": "approved"})
    assert [proposal["id"] for proposal in approved["proposals"]] == [1, 2]
    error = await node.rpc.error("governance_getProposals", {"status": "pending"})
    assert error["code"] == -32602 and "open, approved, expired" in error["data"]["reason"]


async def test_governance_refusals_reach_the_wallet(node: TestNode) -> None:
    """A proposal from an account outside the set, or an approval of no proposal, is refused with its rule."""
    error = await node.rpc.error("tx_submit", ["0x" + node.sign(Propose(GrantIssuer(ALICE.public_key))).encoded.hex()])
    assert (error["code"], error["data"]["rule"]) == (-32010, "not_a_validator")
    error = await node.rpc.error("tx_submit", ["0x" + node.sign(Approve(9), key=node.validator).encoded.hex()])
    assert (error["code"], error["data"]["rule"]) == (-32010, "unknown_proposal")
