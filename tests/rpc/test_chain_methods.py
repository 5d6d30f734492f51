"""``chain_status``, ``chain_getBlock``, ``chain_getTransaction``, ``chain_getCertificate`` and
``chain_validators`` against a real node."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mura.chain.address import decode_address
from mura.chain.block import CommitCertificate, verify_certificate
from mura.chain.governance import validators_hash
from mura.chain.keys import SigningKey
from mura.chain.transaction import ApproveHolder, Burn, Freeze, Mint, RevokeHolder, Transaction, Transfer, Unfreeze
from mura.genesis.testnet import TestnetLayout
from mura.rpc import chain_methods

from .conftest import StartNode
from .support import TestNode, issue

ALICE = SigningKey.from_private_bytes(bytes(range(32)))
REGISTRAR = SigningKey.from_private_bytes(bytes(range(2, 34)))
UNKNOWN_HASH = "0x" + "ab" * 32


def as_hex(data: bytes) -> str:
    return "0x" + data.hex()


# --- chain_status --------------------------------------------------------------------------------


async def test_chain_status_reports_the_network_and_the_node(paused: TestNode) -> None:
    status = await paused.rpc.result("chain_status")
    assert status == {
        "chain_id": "nishiawakura-testnet-1",
        "address_prefix": "tnac",
        "default_asset": "NAC",
        "assets": [
            {"id": "JPYT", "name": "JPY Token", "decimals": 0},
            {"id": "NAC", "name": "Nishiawakura Coin", "decimals": 2},
        ],
        "asset_count": 2,
        "height": 0,
        "head_hash": as_hex(paused.node.store.head.hash),
        "view": 0,
        "validators": [paused.address(paused.validator)],
        "peers": 0,
        "validator_peers": 0,
        "syncing": False,
        "highest_known_height": 0,
        "blocks_behind": 0,
        "role": "validator",
        "voting": True,
    }


async def test_chain_status_lists_a_bounded_number_of_assets_and_counts_them_all(
    paused: TestNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network may issue thousands of assets: the status lists the first ones by id and
    counts them all (asset_list pages through them)."""
    monkeypatch.setattr(chain_methods, "STATUS_ASSETS", 1)
    status = await paused.rpc.result("chain_status")
    assert (status["assets"], status["asset_count"]) == ([{"id": "JPYT", "name": "JPY Token", "decimals": 0}], 2)


async def test_chain_status_follows_the_head(node: TestNode) -> None:
    final = await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 1)))
    status = await node.rpc.result("chain_status", [])
    assert status["height"] >= final["block_height"] >= 1
    block = node.node.store.load_block(status["height"])
    assert block is not None and status["head_hash"] == as_hex(block.hash)


# --- chain_getBlock -------------------------------------------------------------------------------


async def test_get_block_by_height_and_by_hash_with_hashes_or_whole_transactions(node: TestNode) -> None:
    final = await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 42)))
    height = final["block_height"]
    by_height = await node.rpc.result("chain_getBlock", [height])
    assert by_height == await node.rpc.result("chain_getBlock", {"block": final["block_hash"]})
    upper_case = final["block_hash"].upper().replace("0X", "0x")
    assert by_height == await node.rpc.result("chain_getBlock", [upper_case, False])
    stored = node.node.store.load_block(height)
    assert stored is not None
    assert by_height == {
        "height": height,
        "hash": as_hex(stored.hash),
        "chain_id": node.chain_id,
        "parent_hash": as_hex(stored.header.parent_hash),
        "timestamp_ms": stored.header.timestamp_ms,
        "proposer": node.address(node.validator),
        "transaction_root": as_hex(stored.header.transaction_root),
        "state_root": as_hex(stored.header.state_root),
        "next_validators_hash": as_hex(validators_hash(node.node.store.load_validators_at(height + 1))),
        "transaction_count": 1,
        "transactions": [final["hash"]],
    }
    full = await node.rpc.result("chain_getBlock", {"block": height, "full_transactions": True})
    assert full["transactions"] == [final]
    assert {key: value for key, value in full.items() if key != "transactions"} == {
        key: value for key, value in by_height.items() if key != "transactions"
    }


async def test_get_genesis_block_has_no_proposer(paused: TestNode) -> None:
    genesis = await paused.rpc.result("chain_getBlock", [0])
    assert (genesis["height"], genesis["proposer"], genesis["transactions"]) == (0, None, [])
    assert genesis["parent_hash"] != "0x" + "00" * 32, "the genesis parent commits to the genesis document"


@pytest.mark.parametrize(
    ("block", "data"),
    [(10**6, {"height": 10**6, "head": 0}), (UNKNOWN_HASH, {"hash": UNKNOWN_HASH, "head": 0})],
    ids=["height", "hash"],
)
async def test_get_block_not_found(paused: TestNode, block: Any, data: dict[str, Any]) -> None:
    error = await paused.rpc.error("chain_getBlock", [block])
    assert error == {"code": -32020, "message": "Block not found", "data": data}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ([-1], "a height is from 0 to 9223372036854775807, got -1"),
        ([True], "expected a height (integer) or a block hash (0x string), got boolean"),
        ([1.5], "expected a height (integer) or a block hash (0x string), got number"),
        (["12"], "expected 0x and 64 hex digits, got 2 characters"),
        ([0, "yes"], "expected a boolean, got string"),
    ],
    ids=["negative", "boolean", "fraction", "decimal-text", "flag-not-boolean"],
)
async def test_get_block_invalid_params(paused: TestNode, params: list[Any], reason: str) -> None:
    error = await paused.rpc.error("chain_getBlock", params)
    assert error["code"] == -32602 and error["data"]["reason"] == reason


# --- chain_getTransaction -------------------------------------------------------------------------------


async def test_get_transaction_renders_a_transfer_with_its_asset_memo_and_place(node: TestNode) -> None:
    transfer = node.sign(Transfer("NAC", ALICE.public_key, 5, "invoice 7 ✓"))
    await node.finalize(transfer)
    mint = await node.finalize(node.sign(Mint("NAC", ALICE.public_key, 9)))
    burn = await node.finalize(node.sign(Burn("NAC", 3)))

    found = await node.rpc.result("chain_getTransaction", [as_hex(transfer.hash)])
    location = node.node.store.load_transaction_location(transfer.hash)
    assert location is not None
    block = node.node.store.load_block(location[0])
    assert block is not None
    assert found == {
        "hash": as_hex(transfer.hash),
        "chain_id": node.chain_id,
        "sender": node.address(node.treasury),
        "nonce": 0,
        "kind": "transfer",
        "body": {"asset": "NAC", "recipient": node.address(ALICE), "amount": 5, "memo": "invoice 7 ✓"},
        "signature": as_hex(transfer.signature),
        "size": len(transfer.encoded),
        "raw": as_hex(transfer.encoded),
        "block_height": location[0],
        "block_hash": as_hex(block.hash),
        "index": location[1],
    }
    assert Transaction.decode(bytes.fromhex(found["raw"][2:])) == transfer
    assert (mint["kind"], mint["body"]) == ("mint", {"asset": "NAC", "recipient": node.address(ALICE), "amount": 9})
    assert (burn["kind"], burn["body"]) == ("burn", {"asset": "NAC", "amount": 3})
    assert await node.rpc.result("chain_getTransaction", {"transaction_hash": burn["hash"]}) == burn


async def test_get_transaction_renders_an_issue_and_each_registrar_action(node: TestNode) -> None:
    expiry_ms = int(datetime(2031, 1, 1, tzinfo=UTC).timestamp()) * 1000 + 250
    terms = issue("BOND-2031", name="Village bond 2031", decimals=2, supply=500, cap=1000,
                  registrar=REGISTRAR.public_key, policy="restricted", expiry_ms=expiry_ms)
    issued = await node.finalize(node.sign(terms))
    assert (issued["kind"], issued["sender"]) == ("issue_asset", node.address(node.treasury))
    assert issued["body"] == {
        "asset": "BOND-2031", "name": "Village bond 2031", "decimals": 2, "supply": 500, "reissuable": True,
        "cap": 1000, "registrar": node.address(REGISTRAR), "policy": "restricted", "expiry_ms": expiry_ms,
        "expiry_time": "2031-01-01T00:00:00.250Z",
    }
    plain = await node.finalize(node.sign(issue("POINTS", name="Shop points")))
    assert plain["body"] == {
        "asset": "POINTS", "name": "Shop points", "decimals": 0, "supply": 0, "reissuable": True, "cap": None,
        "registrar": None, "policy": "open", "expiry_ms": None, "expiry_time": None,
    }
    for kind in (ApproveHolder, Freeze, Unfreeze, RevokeHolder):
        final = await node.finalize(node.sign(kind("BOND-2031", ALICE.public_key), key=REGISTRAR))
        found = await node.checked("chain_getTransaction", [final["hash"]])
        assert (found["kind"], found["sender"], found["body"]) == (
            kind.KIND, node.address(REGISTRAR), {"asset": "BOND-2031", "account": node.address(ALICE)},
        )


async def test_get_transaction_not_found_says_whether_it_is_pending(paused: TestNode) -> None:
    pending = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    await paused.submit(pending)
    error = await paused.rpc.error("chain_getTransaction", [as_hex(pending.hash)])
    assert error == {
        "code": -32021,
        "message": "Transaction not found",
        "data": {"transaction_hash": as_hex(pending.hash), "pending": True},
    }
    unknown = await paused.rpc.error("chain_getTransaction", [UNKNOWN_HASH])
    assert unknown["data"] == {"transaction_hash": UNKNOWN_HASH, "pending": False}
    malformed = await paused.rpc.error("chain_getTransaction", ["0x1234"])
    assert malformed["code"] == -32602 and malformed["data"]["param"] == "transaction_hash"


# --- chain_getCertificate ---------------------------------------------------------------------------------


async def test_get_certificate_is_a_quorum_that_verifies(node: TestNode) -> None:
    final = await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 1)))
    certificate = await node.rpc.result("chain_getCertificate", [final["block_hash"]])
    assert await node.rpc.result("chain_getCertificate", [final["block_height"]]) == certificate
    assert (certificate["height"], certificate["block_hash"], certificate["quorum"]) == (
        final["block_height"], final["block_hash"], 1,
    )
    [signer] = certificate["signatures"]
    assert (signer["validator_index"], signer["validator"], signer["name"]) == (
        0, node.address(node.validator), "village-office",
    )
    rebuilt = CommitCertificate(
        certificate["height"],
        certificate["view"],
        bytes.fromhex(certificate["block_hash"][2:]),
        ((0, bytes.fromhex(signer["signature"][2:])),),
    )
    verify_certificate(
        rebuilt,
        chain_id=node.chain_id,
        height=final["block_height"],
        block_hash=bytes.fromhex(final["block_hash"][2:]),
        validators=[decode_address(signer["validator"], node.prefix)],
    )


async def test_get_certificate_of_genesis_and_of_a_missing_block(paused: TestNode) -> None:
    assert await paused.rpc.error("chain_getCertificate", [0]) == {
        "code": -32022,
        "message": "No certificate",
        "data": {"height": 0, "reason": "the genesis block is final by the genesis file, not by votes"},
    }
    missing = await paused.rpc.error("chain_getCertificate", [UNKNOWN_HASH])
    assert (missing["code"], missing["data"]) == (-32020, {"hash": UNKNOWN_HASH, "head": 0})


# --- chain_validators ---------------------------------------------------------------------------------------


async def test_validators_have_names_addresses_and_keys(paused: TestNode) -> None:
    peer_address = paused.node.genesis.validators[0].peer_address
    assert await paused.rpc.result("chain_validators") == {
        "height": 1,
        "quorum": 1,
        "fault_tolerance": 0,
        "validators": [
            {
                "index": 0,
                "name": "village-office",
                "address": paused.address(paused.validator),
                "public_key": as_hex(paused.validator.public_key),
                "peer_address": peer_address,
            }
        ],
    }


async def test_validators_of_a_four_validator_network(start_node: StartNode, testnet_of_four: TestnetLayout) -> None:
    node = await start_node(layout=testnet_of_four)
    validators = await node.rpc.result("chain_validators")
    assert (validators["quorum"], validators["fault_tolerance"]) == (3, 1)
    assert [validator["name"] for validator in validators["validators"]] == [
        "village-office", "token-association", "regional-chain-partner", "forestry-cooperative",
    ]
    assert [validator["public_key"] for validator in validators["validators"]] == [
        as_hex(validator.public_key) for validator in testnet_of_four.genesis.validators
    ]
