"""Tests for genesis/format.py: loading files, round trips, the genesis block and
the shipped example (the document rules are in test_format.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mura.chain.assets import AssetState, TransferPolicy
from mura.chain.errors import InvalidGenesis
from mura.chain.governance import validator_keys
from mura.chain.pending import approval_key
from mura.chain.state import Account, GenesisAsset, MemoryState, Role
from mura.genesis import example_genesis_path
from mura.genesis.format import Genesis, genesis_block, load_genesis, parse_genesis

FOUNDERS = ["village-office", "token-association", "regional-chain-partner", "forestry-cooperative"]


def example_document() -> dict[str, Any]:
    """A fresh copy of the shipped example as a JSON value."""
    document: dict[str, Any] = json.loads(example_genesis_path().read_text(encoding="utf-8"))
    return document


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "genesis.json"
    path.write_text(text, encoding="utf-8")
    return path


def problems_loading(path: Path) -> list[str]:
    with pytest.raises(InvalidGenesis) as caught:
        load_genesis(path)
    return caught.value.problems


# --- files ----------------------------------------------------------------------


def test_load_genesis(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(example_document()))
    assert load_genesis(path) == parse_genesis(example_document())
    assert load_genesis(str(path)) == load_genesis(path)


def test_invalid_file_missing(tmp_path: Path) -> None:
    assert problems_loading(tmp_path / "absent.json") == [f"{tmp_path / 'absent.json'}: file does not exist"]


def test_invalid_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_bytes(b'{"chain_id": "\xff"}')
    [problem] = problems_loading(path)
    assert problem.startswith(f"{path}: cannot be read: ")


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "chain_id": "x",\n  "address_prefix": tnac\n}\n')
    [problem] = problems_loading(path)
    assert problem.startswith(f"{path}: invalid JSON at line 3, column 21: ")


def test_invalid_json_truncated_file(tmp_path: Path) -> None:
    text = json.dumps(example_document(), indent=2)
    path = write(tmp_path, text[: len(text) // 2])
    [problem] = problems_loading(path)
    assert problem.startswith(f"{path}: invalid JSON at line ")


def test_invalid_json_duplicate_key(tmp_path: Path) -> None:
    # Another parser might keep the first chain id where Python keeps the last.
    text = json.dumps(example_document())[:-1] + ', "chain_id": "other-chain"}'
    problems = problems_loading(write(tmp_path, text))
    assert problems == [f"{tmp_path / 'genesis.json'}: invalid JSON: key 'chain_id' appears twice in one object"]


def test_invalid_json_nan(tmp_path: Path) -> None:
    text = json.dumps(example_document()).replace("100000000", "NaN")
    [problem] = problems_loading(write(tmp_path, text))
    assert problem.endswith("invalid JSON: NaN is not a JSON number")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff"])
def test_invalid_json_half_of_a_utf16_pair(tmp_path: Path, escape: str) -> None:
    # Python reads a lone surrogate escape into text that cannot be written as UTF-8 (nor hashed);
    # other parsers replace it or refuse the file.
    text = json.dumps(example_document()).replace("Nishiawakura Coin", f"Nishiawakura {escape}Coin")
    path = write(tmp_path, text)
    assert problems_loading(path) == [f"{path}: invalid JSON: {escape} is half of a UTF-16 pair, not a character"]


def test_invalid_json_half_of_a_utf16_pair_deep_in_the_document(tmp_path: Path) -> None:
    depth = 900  # deeper than a recursive walk through the document could go
    text = json.dumps(example_document())[:-1] + ', "colour": ' + "[" * depth + '"\\ud800"' + "]" * depth + "}"
    path = write(tmp_path, text)
    assert problems_loading(path) == [f"{path}: invalid JSON: \\ud800 is half of a UTF-16 pair, not a character"]


def test_invalid_json_nested_too_deeply(tmp_path: Path) -> None:
    path = write(tmp_path, '{"colour": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert problems_loading(path) == [f"{path}: invalid JSON: arrays or objects nested too deeply"]


def test_json_pair_of_utf16_halves_is_one_character(tmp_path: Path) -> None:
    text = json.dumps(example_document()).replace("Nishiawakura Coin", "Nishiawakura \\ud83c\\udf32")
    assert load_genesis(write(tmp_path, text)).assets[0].terms.name == "Nishiawakura \U0001f332"


def test_invalid_file_problems_come_from_the_document(tmp_path: Path) -> None:
    document = example_document()
    document["validators"][2]["public_key"] = "0123456789"
    document["colour"] = "green"
    document["assets"][1]["policy"] = "closed"
    problems = problems_loading(write(tmp_path, json.dumps(document)))
    assert problems == [
        "colour: unknown field",
        "validators[2].public_key: expected 64 hex characters, got 10",
        'assets[1].policy: must be "open" or "restricted", got "closed"',
    ]


def test_to_json_round_trips() -> None:
    genesis = dataclasses.replace(
        load_genesis(example_genesis_path()),
        timestamp_ms=1_795_392_000_250,
        max_block_bytes=4096,
        max_block_transactions=10,
    )
    text = genesis.to_json()
    assert parse_genesis(json.loads(text)) == genesis
    assert parse_genesis(json.loads(text)).to_json() == text
    document = json.loads(text)
    assert document["genesis_time"] == "2026-11-23T00:00:00.250Z"
    assert document["limits"] == {"max_block_bytes": 4096, "max_block_transactions": 10}
    assert list(document) == [
        "chain_id",
        "address_prefix",
        "genesis_time",
        "validators",
        "issuers",
        "assets",
        "limits",
        "governance",
    ]


def reordered(value: Any) -> Any:
    """``value`` with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def test_document_hash_is_of_the_canonical_json(tmp_path: Path) -> None:
    """Key order, spacing and escapes in the file do not change the genesis nor its hash."""
    genesis = load_genesis(example_genesis_path())
    text = json.dumps(reordered(example_document()), indent=7, ensure_ascii=True)
    assert text.index('"limits"') < text.index('"chain_id"')
    other = load_genesis(write(tmp_path, text))
    assert other == genesis and other.document_hash() == genesis.document_hash()
    canonical = json.dumps(genesis.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert genesis.document_hash() == hashlib.sha256(canonical.encode()).digest()
    assert genesis_block(genesis)[0].header.parent_hash == genesis.document_hash()


def test_document_hash_differs_with_any_setting() -> None:
    genesis = load_genesis(example_genesis_path())
    office, *others = genesis.validators
    variants = [
        genesis,
        dataclasses.replace(genesis, max_block_bytes=4096),
        dataclasses.replace(genesis, max_block_transactions=10),
        dataclasses.replace(genesis, address_prefix="nac"),
        dataclasses.replace(genesis, validators=(dataclasses.replace(office, peer_address="10.0.0.1:9700"), *others)),
        dataclasses.replace(genesis, validators=(dataclasses.replace(office, name="office"), *others)),
        with_nac_terms(genesis, name="Nishiawakura Coin 2"),
        with_nac_terms(genesis, decimals=3),
    ]
    assert len({variant.document_hash() for variant in variants}) == len(variants)


# --- the genesis block ----------------------------------------------------------


def test_genesis_block_is_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path, example_genesis_path().read_text(encoding="utf-8"))
    first_block, first_changes = genesis_block(load_genesis(path))
    second_block, second_changes = genesis_block(load_genesis(path))
    assert first_block.hash == second_block.hash
    assert first_changes.state_root == second_changes.state_root
    assert first_block.header.state_root == first_changes.state_root
    assert first_block.height == 0 and first_block.transactions == ()
    assert first_block.header.chain_id == "nishiawakura-testnet-1"
    assert first_block.header.timestamp_ms == load_genesis(path).timestamp_ms


def with_nac_terms(genesis: Genesis, **changes: Any) -> Genesis:
    """``genesis`` with NAC's terms changed."""
    nac, *others = genesis.assets
    changed = dataclasses.replace(nac, terms=dataclasses.replace(nac.terms, **changes))
    return dataclasses.replace(genesis, assets=(changed, *others))


def test_genesis_block_differs_with_any_committed_field() -> None:
    genesis = load_genesis(example_genesis_path())
    nac, jpyt = genesis.assets
    variants = [
        genesis,
        dataclasses.replace(genesis, chain_id="other-chain"),
        dataclasses.replace(genesis, timestamp_ms=genesis.timestamp_ms + 1),
        dataclasses.replace(genesis, assets=(dataclasses.replace(nac, allocations=((genesis.issuers[0], 99),)), jpyt)),
        dataclasses.replace(genesis, assets=(jpyt, nac)),
        dataclasses.replace(genesis, assets=(nac,)),
        dataclasses.replace(genesis, assets=()),
        with_nac_terms(genesis, name="Nishiawakura Coin 2"),
        with_nac_terms(genesis, decimals=3),
        with_nac_terms(genesis, cap=200_000_000),
        with_nac_terms(genesis, policy=TransferPolicy.RESTRICTED),
        with_nac_terms(genesis, registrar=genesis.issuers[1]),
        with_nac_terms(genesis, expiry_ms=genesis.timestamp_ms + 1),
        dataclasses.replace(genesis, issuers=()),
        dataclasses.replace(genesis, validators=genesis.validators[::-1]),
        dataclasses.replace(genesis, max_block_transactions=10),
    ]
    assert len({genesis_block(variant)[0].hash for variant in variants}) == len(variants)


def test_genesis_state_holds_assets_balances_and_roles() -> None:
    genesis = load_genesis(example_genesis_path())
    treasury, bank = genesis.issuers
    _, changes = genesis_block(genesis)
    state = MemoryState()
    state.commit(changes)
    for issuer in (treasury, bank):
        assert state.load_account(issuer) == Account(nonce=0, roles=Role.ISSUER)
    for validator in genesis.validator_keys():
        assert state.load_account(validator) == Account(roles=Role.VALIDATOR)
    assert state.assets() == {asset.terms.asset: asset.terms for asset in genesis.assets}
    assert state.balances("NAC") == {treasury: 100_000_000}
    assert state.balances("JPYT") == {bank: 100_000_000}
    assert state.load_balance(bank, "NAC") == 0
    for asset in ("NAC", "JPYT"):
        assert state.load_asset_state(asset) == AssetState(supply=100_000_000, holders=1)
    assert state.load_validators() == genesis.validator_records()
    assert validator_keys(state.load_validators()) == genesis.validator_keys()
    assert state.load_lattice().root() == changes.state_root


def test_genesis_state_approves_the_holders_of_a_restricted_asset() -> None:
    genesis = with_nac_terms(load_genesis(example_genesis_path()), policy=TransferPolicy.RESTRICTED)
    treasury, bank = genesis.issuers
    _, changes = genesis_block(genesis)
    state = MemoryState()
    state.commit(changes)
    assert state.load_entry(approval_key("NAC", treasury)) is not None
    assert state.load_entry(approval_key("NAC", bank)) is None
    assert state.load_entry(approval_key("JPYT", bank)) is None  # JPYT stays open


# --- the shipped example --------------------------------------------------------


def test_example_genesis_loads() -> None:
    genesis = load_genesis(example_genesis_path())
    assert isinstance(genesis, Genesis)
    assert genesis.chain_id == "nishiawakura-testnet-1" and genesis.address_prefix == "tnac"
    assert [v.name for v in genesis.validators] == FOUNDERS
    assert [v.peer_address for v in genesis.validators] == [f"127.0.0.1:{9700 + i}" for i in range(4)]
    treasury, bank = genesis.issuers
    assert not {treasury, bank} & set(genesis.validator_keys())
    nac, jpyt = genesis.assets
    assert genesis.default_asset == "NAC"
    assert (nac.terms.asset, nac.terms.name, nac.terms.decimals) == ("NAC", "Nishiawakura Coin", 2)
    assert (jpyt.terms.asset, jpyt.terms.name, jpyt.terms.decimals) == ("JPYT", "JPY Token", 0)
    for asset, issuer in ((nac, treasury), (jpyt, bank)):
        assert asset.terms.issuer == asset.terms.registrar == issuer
        assert asset.terms.reissuable and asset.terms.cap == 0 and asset.terms.expiry_ms == 0
        assert asset.terms.policy is TransferPolicy.OPEN
        assert asset == GenesisAsset(asset.terms, ((issuer, 100_000_000),))


def test_example_genesis_holds_no_private_key() -> None:
    text = example_genesis_path().read_text(encoding="utf-8")
    assert "private" not in text.lower()
    assert text == load_genesis(example_genesis_path()).to_json()
