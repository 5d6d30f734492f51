"""Tests for genesis/format.py: every rule of a genesis document, passing and failing.

The rules of its assets are in test_format_assets.py; files, round trips, the
genesis block and the shipped example in test_format_files.py.
"""

from __future__ import annotations

import pytest

from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.block import MAX_BLOCK_BYTES, MAX_BLOCK_TRANSACTIONS
from mura.chain.errors import InvalidGenesis
from mura.chain.governance import DEFAULT_PROPOSAL_LIFETIME_BLOCKS, MAX_PROPOSAL_LIFETIME_BLOCKS
from mura.chain.state import ChainRules, GenesisAsset
from mura.genesis.format import ValidatorInfo, format_genesis_time, parse_genesis, parse_genesis_time
from mura.tests.genesis.documents import (
    BANK,
    GENESIS_TIME_MS,
    PREFIX,
    TREASURY,
    address,
    assert_problem,
    key,
    problems_of,
    valid_document,
    with_field,
    without_field,
)

# --- the valid document ---------------------------------------------------------


def test_valid_document_parses_every_field() -> None:
    genesis = parse_genesis(valid_document())
    assert genesis.chain_id == "nishiawakura-testnet-1"
    assert genesis.address_prefix == PREFIX
    assert genesis.timestamp_ms == GENESIS_TIME_MS
    assert genesis.validators[0] == ValidatorInfo("village-office", key(1), "127.0.0.1:9700")
    assert genesis.validator_keys() == (key(1), key(2), key(3), key(4))
    assert genesis.issuers == (key(TREASURY), key(BANK))
    nac = AssetTerms(
        asset="NAC",
        name="Nishiawakura Coin",
        decimals=2,
        issuer=key(TREASURY),
        reissuable=True,
        cap=0,
        registrar=key(TREASURY),
        policy=TransferPolicy.OPEN,
        expiry_ms=0,
    )
    assert genesis.assets[0] == GenesisAsset(nac, ((key(TREASURY), 100_000_000),))
    assert [asset.terms.asset for asset in genesis.assets] == ["NAC", "JPYT"]
    assert genesis.default_asset == "NAC"


def test_genesis_is_frozen() -> None:
    genesis = parse_genesis(valid_document())
    with pytest.raises(AttributeError):
        genesis.chain_id = "other"  # type: ignore[misc]


# --- chain_id -------------------------------------------------------------------


@pytest.mark.parametrize("chain_id", ["a", "nishiawakura-testnet-1", "x" * 64, "0-9"])
def test_chain_id(chain_id: str) -> None:
    assert parse_genesis(with_field("chain_id", chain_id)).chain_id == chain_id


@pytest.mark.parametrize("chain_id", ["", "x" * 65, "Nishiawakura", "testnet_1", "net 1", "net\n", 7, None])
def test_invalid_chain_id(chain_id: object) -> None:
    assert_problem(with_field("chain_id", chain_id), "chain_id", "lowercase letters, digits or '-'")


def test_invalid_chain_id_missing() -> None:
    assert problems_of(without_field("chain_id")) == ["chain_id: missing"]


# --- address_prefix -------------------------------------------------------------


def test_address_prefix() -> None:
    document = with_field("address_prefix", "nac")
    document["issuers"] = [address(TREASURY, "nac"), address(BANK, "nac")]
    for asset in document["assets"]:
        asset["issuer"] = asset["allocations"][0]["address"] = address(TREASURY, "nac")
    genesis = parse_genesis(document)
    assert genesis.address_prefix == "nac"
    assert {asset.terms.issuer for asset in genesis.assets} == {key(TREASURY)}


@pytest.mark.parametrize("prefix", ["", "TNAC", "tn-ac", "x" * 17, 5])
def test_invalid_address_prefix(prefix: object) -> None:
    assert_problem(with_field("address_prefix", prefix), "address_prefix")


# --- genesis_time ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "timestamp_ms"),
    [
        ("2026-11-23T00:00:00Z", GENESIS_TIME_MS),
        ("2026-11-23T00:00:00+00:00", GENESIS_TIME_MS),
        ("2026-11-23t00:00:00z", GENESIS_TIME_MS),
        ("2026-11-23T00:00:01.5Z", GENESIS_TIME_MS + 1500),
        ("2026-11-23T00:00:00.007Z", GENESIS_TIME_MS + 7),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_genesis_time(text: str, timestamp_ms: int) -> None:
    assert parse_genesis(with_field("genesis_time", text)).timestamp_ms == timestamp_ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23 00:00:00Z",
        "2026-11-23T00:00:00",
        "2026-11-23T09:00:00+09:00",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-23T00:00:00.1234Z",
        "1969-12-31T23:59:59Z",
        "\uff12\uff10\uff12\uff16-11-23T00:00:00Z",  # full-width digits
        1795392000,
    ],
)
def test_invalid_genesis_time(text: object) -> None:
    assert_problem(with_field("genesis_time", text), "genesis_time")


@pytest.mark.parametrize("timestamp_ms", [0, 1, 999, GENESIS_TIME_MS, GENESIS_TIME_MS + 123])
def test_genesis_time_text_round_trips(timestamp_ms: int) -> None:
    assert parse_genesis_time(format_genesis_time(timestamp_ms)) == timestamp_ms


# --- validators -----------------------------------------------------------------


def test_validators_keep_their_order() -> None:
    document = valid_document()
    document["validators"].reverse()
    genesis = parse_genesis(document)
    assert genesis.validator_keys() == (key(4), key(3), key(2), key(1))


@pytest.mark.parametrize("count", [1, 256])
def test_validators_count(count: int) -> None:
    document = valid_document()
    document["validators"] = [
        {"name": f"v-{index}", "public_key": key(index + 20).hex(), "peer_address": "10.0.0.1:9700"}
        for index in range(count)
    ]
    assert len(parse_genesis(document).validators) == count


@pytest.mark.parametrize("count", [0, 257])
def test_invalid_validators_count(count: int) -> None:
    document = valid_document()
    document["validators"] = [
        {"name": f"v-{index}", "public_key": key(index + 20).hex(), "peer_address": "10.0.0.1:9700"}
        for index in range(count)
    ]
    assert problems_of(document) == [f"validators: must hold 1 to 256 entries, got {count}"]


def test_validator_public_key_accepts_upper_case_hex() -> None:
    genesis = parse_genesis(with_field("validators.2.public_key", key(3).hex().upper()))
    assert genesis.validators[2].public_key == key(3)


def test_invalid_validator_public_key_length() -> None:
    problems = problems_of(with_field("validators.2.public_key", "0123456789"))
    assert problems == ["validators[2].public_key: expected 64 hex characters, got 10"]


@pytest.mark.parametrize("value", ["g" * 64, 1234, None])
def test_invalid_validator_public_key(value: object) -> None:
    assert_problem(with_field("validators.1.public_key", value), "validators[1].public_key", "expected 64 hex")


def test_invalid_validator_duplicate_public_key() -> None:
    problems = problems_of(with_field("validators.3.public_key", key(1).hex()))
    assert problems == ["validators[3].public_key: duplicate of validators[0].public_key"]


def test_invalid_validator_duplicate_name() -> None:
    problems = problems_of(with_field("validators.2.name", "village-office"))
    assert problems == ["validators[2].name: duplicate of validators[0].name"]


@pytest.mark.parametrize("name", ["Village-Office", "", "village office", "x" * 65, 3])
def test_invalid_validator_name(name: object) -> None:
    assert_problem(with_field("validators.0.name", name), "validators[0].name")


@pytest.mark.parametrize("peer", ["127.0.0.1:1", "node-a.example.jp:65535", "[::1]:9700"])
def test_validator_peer_address(peer: str) -> None:
    assert parse_genesis(with_field("validators.0.peer_address", peer)).validators[0].peer_address == peer


@pytest.mark.parametrize(
    "peer", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", ":9700", "a host:9700", "h:+80", 9700]
)
def test_invalid_validator_peer_address(peer: object) -> None:
    assert_problem(with_field("validators.3.peer_address", peer), "validators[3].peer_address")


def test_invalid_validator_unknown_and_missing_fields() -> None:
    document = valid_document()
    document["validators"][1]["stake"] = 5
    del document["validators"][1]["peer_address"]
    assert problems_of(document) == ["validators[1].stake: unknown field", "validators[1].peer_address: missing"]


# --- issuers --------------------------------------------------------------------


def test_issuers_may_be_empty_or_several() -> None:
    # An asset's issuer needs no issuer role: the role is for issuing new assets.
    assert parse_genesis(with_field("issuers", [])).issuers == ()
    assert parse_genesis(with_field("issuers", [address(12), address(13)])).issuers == (key(12), key(13))


@pytest.mark.parametrize(
    ("issuer", "fragment"),
    [
        (address(TREASURY, "nac"), "network 'nac'"),
        (address(TREASURY)[:-1] + ("q" if address(TREASURY)[-1] != "q" else "p"), "checksum"),
        ("tnac1notanaddress", ""),
        (42, "expected text"),
    ],
)
def test_invalid_issuer(issuer: object, fragment: str) -> None:
    assert_problem(with_field("issuers", [address(11), issuer]), "issuers[1]", fragment)


def test_invalid_issuer_duplicate() -> None:
    # Bech32m addresses may be written in upper case: still the same account.
    problems = problems_of(with_field("issuers", [address(11), address(11).upper()]))
    assert problems == ["issuers[1]: duplicate of issuers[0]"]


def test_invalid_issuers_not_a_list() -> None:
    assert problems_of(with_field("issuers", address(11))) == ["issuers: expected an array, got text"]


# --- limits ---------------------------------------------------------------------


def test_limits_default_to_chain_rules() -> None:
    rules = parse_genesis(valid_document()).rules()
    assert rules == ChainRules(chain_id="nishiawakura-testnet-1")


def test_limits() -> None:
    document = valid_document()
    document["limits"] = {"max_block_bytes": 65536, "max_block_transactions": MAX_BLOCK_TRANSACTIONS}
    rules = parse_genesis(document).rules()
    assert (rules.max_block_bytes, rules.max_block_transactions) == (65536, MAX_BLOCK_TRANSACTIONS)


def test_limits_one_given_other_defaults() -> None:
    document = valid_document()
    document["limits"] = {"max_block_transactions": 500}
    genesis = parse_genesis(document)
    assert (genesis.max_block_bytes, genesis.max_block_transactions) == (MAX_BLOCK_BYTES, 500)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_block_bytes", 0),
        ("max_block_bytes", MAX_BLOCK_BYTES + 1),
        ("max_block_bytes", "1000"),
        ("max_block_transactions", -1),
        ("max_block_transactions", True),
        ("max_block_transactions", MAX_BLOCK_TRANSACTIONS + 1),
    ],
)
def test_invalid_limits(field: str, value: object) -> None:
    document = valid_document()
    document["limits"] = {field: value}
    assert_problem(document, f"limits.{field}", "must be a positive integer")


def test_invalid_limits_unknown_field() -> None:
    document = valid_document()
    document["limits"] = {"max_block_gas": 10}
    assert problems_of(document) == ["limits.max_block_gas: unknown field"]


# --- governance -----------------------------------------------------------------


def test_governance_defaults_to_chain_rules() -> None:
    assert parse_genesis(valid_document()).rules().proposal_lifetime_blocks == DEFAULT_PROPOSAL_LIFETIME_BLOCKS


def test_governance_proposal_lifetime() -> None:
    document = valid_document()
    document["governance"] = {"proposal_lifetime_blocks": 600}
    genesis = parse_genesis(document)
    assert genesis.rules().proposal_lifetime_blocks == 600
    assert genesis.to_document()["governance"] == {"proposal_lifetime_blocks": 600}


@pytest.mark.parametrize("value", [0, -5, MAX_PROPOSAL_LIFETIME_BLOCKS + 1, "600", True, 1.5])
def test_invalid_governance_proposal_lifetime(value: object) -> None:
    document = valid_document()
    document["governance"] = {"proposal_lifetime_blocks": value}
    assert_problem(document, "governance.proposal_lifetime_blocks", "must be a positive integer")


def test_invalid_governance_unknown_field() -> None:
    document = valid_document()
    document["governance"] = {"quorum": 3}
    assert problems_of(document) == ["governance.quorum: unknown field"]


def test_genesis_validators_keep_their_names_and_addresses() -> None:
    genesis = parse_genesis(valid_document())
    records = genesis.validator_records()
    assert [(record.name, record.address) for record in records] == [
        (validator.name, validator.peer_address) for validator in genesis.validators
    ]


# --- the document as a whole ----------------------------------------------------


def test_invalid_unknown_top_level_field() -> None:
    assert problems_of(with_field("colour", "green")) == ["colour: unknown field"]


@pytest.mark.parametrize("document", [[], "genesis", None, 3])
def test_invalid_document_not_an_object(document: object) -> None:
    assert len(problems_of(document)) == 1
    assert problems_of(document)[0].startswith("genesis: expected an object")


def test_invalid_several_problems_are_all_reported() -> None:
    document = valid_document()
    document["colour"] = "green"
    document["chain_id"] = "Bad Chain"
    del document["assets"][0]["decimals"]
    document["validators"][2]["public_key"] = "0123456789"
    document["assets"][1]["allocations"][0]["amount"] = -5
    document["assets"][1]["expiry"] = "2026-11-22T00:00:00Z"
    problems = problems_of(document)
    assert sorted(problems) == sorted(
        [
            "colour: unknown field",
            "chain_id: must be 1 to 64 lowercase letters, digits or '-', got \"Bad Chain\"",
            "assets[0].decimals: missing",
            "validators[2].public_key: expected 64 hex characters, got 10",
            "assets[1].allocations[0].amount: must be a positive integer, got -5",
            "assets[1].expiry: must be after genesis_time (2026-11-23T00:00:00Z)",
        ]
    )
    assert all(problem in str(InvalidGenesis(problems)) for problem in problems)


def test_invalid_prefix_is_reported_once_not_per_address() -> None:
    problems = problems_of(with_field("address_prefix", "TNAC"))
    assert len(problems) == 1 and problems[0].startswith("address_prefix: ")


def test_invalid_genesis_time_is_reported_once_not_per_expiry() -> None:
    document = with_field("genesis_time", "yesterday")
    document["assets"][0]["expiry"] = "2027-01-01T00:00:00Z"
    problems = problems_of(document)
    assert len(problems) == 1 and problems[0].startswith("genesis_time: ")


def test_invalid_old_format_names_token_and_allocations() -> None:
    """A genesis written before assets (a token and one set of balances) is refused field by field."""
    document = without_field("assets")
    document["token"] = {"name": "Nishiawakura Coin", "symbol": "NAC", "decimals": 2}
    document["allocations"] = [{"address": address(TREASURY), "amount": 100_000_000}]
    assert problems_of(document) == ["token: unknown field", "allocations: unknown field", "assets: missing"]
