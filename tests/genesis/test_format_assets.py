"""Tests for genesis/format.py: the assets a genesis declares, each field's rule passing
and failing, their defaults, and the rules across fields and across assets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.state import MAX_SUPPLY, GenesisAsset, MemoryState, Role
from mura.genesis.format import MAX_GENESIS_ASSETS, genesis_block, parse_genesis
from mura.tests.genesis.documents import (
    BANK,
    GENESIS_TIME_MS,
    TREASURY,
    address,
    assert_problem,
    jpyt_document,
    key,
    nac_document,
    problems_of,
    valid_document,
    with_field,
    without_field,
)

#: 2027-01-01T00:00:00Z
NEW_YEAR_MS = 1_798_761_600_000
ID_RULE = "not uppercase letters and digits in groups joined by single hyphens"


def minimal_asset() -> dict[str, Any]:
    """An asset with only the fields that have no default."""
    return {
        "id": "VOUCHER",
        "name": "Forest voucher",
        "decimals": 0,
        "issuer": address(TREASURY),
        "supply": "reissuable",
    }


def with_asset(asset: dict[str, Any]) -> dict[str, Any]:
    """``valid_document()`` declaring ``asset`` instead of NAC (JPYT stays second)."""
    return with_field("assets.0", asset)


def first_asset(document: dict[str, Any]) -> GenesisAsset:
    return parse_genesis(document).assets[0]


# --- defaults -------------------------------------------------------------------


def test_asset_defaults() -> None:
    """No cap, the issuer as registrar, open to anyone, never expiring, and no opening balance."""
    asset = first_asset(with_asset(minimal_asset()))
    assert asset.terms == AssetTerms(
        asset="VOUCHER",
        name="Forest voucher",
        decimals=0,
        issuer=key(TREASURY),
        reissuable=True,
        cap=0,
        registrar=key(TREASURY),
        policy=TransferPolicy.OPEN,
        expiry_ms=0,
    )
    assert asset.allocations == ()


def test_asset_every_field() -> None:
    document = with_asset(
        {
            **minimal_asset(),
            "decimals": 2,
            "cap": 500_000,
            "registrar": address(20),
            "policy": "restricted",
            "expiry": "2027-01-01T00:00:00Z",
            "allocations": [{"address": address(21), "amount": 300}, {"address": address(22), "amount": 200}],
        }
    )
    asset = first_asset(document)
    assert (asset.terms.cap, asset.terms.registrar, asset.terms.policy) == (500_000, key(20), TransferPolicy.RESTRICTED)
    assert asset.terms.expiry_ms == NEW_YEAR_MS
    assert asset.allocations == ((key(21), 300), (key(22), 200))


def test_asset_allocations_keep_their_order() -> None:
    allocations = [{"address": address(number), "amount": number} for number in (30, 25, 27)]
    asset = first_asset(with_field("assets.0.allocations", allocations))
    assert asset.allocations == ((key(30), 30), (key(25), 25), (key(27), 27))


# --- id -------------------------------------------------------------------------


@pytest.mark.parametrize("asset_id", ["A", "NAC", "JPYT2", "NISHI-2031-01", "X" * 32])
def test_asset_id(asset_id: str) -> None:
    assert first_asset(with_field("assets.0.id", asset_id)).terms.asset == asset_id


@pytest.mark.parametrize(
    ("asset_id", "fragment"),
    [
        ("", "1 to 32 characters, got none"),
        ("X" * 33, "at most 32 characters, got 33"),
        ("nac", ID_RULE),
        ("1NAC", ID_RULE),
        ("NA--C", ID_RULE),
        ("NAC-", ID_RULE),
        ("N C", ID_RULE),
        ("\uff2e\uff21\uff23", ID_RULE),  # full-width letters
        (7, "expected text, got a number"),
        (None, "expected text, got null"),
        ([], "expected text, got an array"),
        ({"symbol": "NAC"}, "expected text, got an object"),
    ],
)
def test_invalid_asset_id(asset_id: object, fragment: str) -> None:
    problems = problems_of(with_field("assets.0.id", asset_id))
    assert len(problems) == 1 and problems[0].startswith("assets[0].id: ") and fragment in problems[0], problems


def test_invalid_asset_id_duplicate() -> None:
    assert problems_of(with_field("assets.1.id", "NAC")) == ["assets[1].id: duplicate of assets[0].id"]


def test_invalid_asset_ids_that_are_invalid_are_not_also_duplicates() -> None:
    document = with_field("assets.0.id", "nac")
    document["assets"][1]["id"] = "nac"
    problems = problems_of(document)
    assert [problem.split(":")[0] for problem in problems] == ["assets[0].id", "assets[1].id"]
    assert all(ID_RULE in problem for problem in problems)


# --- name -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["西粟倉コイン", "N" * 64, "Forest voucher (2031)", " padded ", "🌲" * 64, "Café ½"])
def test_asset_name(name: str) -> None:
    assert first_asset(with_field("assets.0.name", name)).terms.name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "\u3000\u3000",  # ideographic spaces: the issue_asset rule strips them too
        "Nishiawakura\u3000Coin",  # nor are they printable, for issue_asset
        "Nishi\u200dawakura",  # an invisible joiner
        "\ue000",  # private use
        "N" * 65,
        "line\nbreak",
        "tab\there",
        "\x7f",
        "\ud800",  # half of a UTF-16 pair: not a character
        3,
        None,
    ],
)
def test_invalid_asset_name(name: object) -> None:
    problems = problems_of(with_field("assets.0.name", name))
    assert len(problems) == 1
    assert problems[0].startswith("assets[0].name: must be 1 to 64 printable characters, not only spaces, got ")
    problems[0].encode()  # printable as UTF-8, whatever the name held


# --- decimals -------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [0, 2, 18])
def test_asset_decimals(decimals: int) -> None:
    assert first_asset(with_field("assets.0.decimals", decimals)).terms.decimals == decimals


@pytest.mark.parametrize("decimals", [-1, 19, True, 2.0, "2", None])
def test_invalid_asset_decimals(decimals: object) -> None:
    problems = problems_of(with_field("assets.0.decimals", decimals))
    assert problems == [f"assets[0].decimals: must be an integer from 0 to 18, got {json.dumps(decimals)}"]


# --- issuer and registrar -------------------------------------------------------


@pytest.mark.parametrize("field", ["issuer", "registrar"])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (address(TREASURY, "nac"), "network 'nac'"),
        (address(TREASURY)[:-1] + ("q" if address(TREASURY)[-1] != "q" else "p"), "checksum"),
        ("tnac1notanaddress", ""),
        (key(TREASURY).hex(), ""),
        (42, "expected text, got a number"),
    ],
)
def test_invalid_asset_account(field: str, value: object, fragment: str) -> None:
    problems = problems_of(with_field(f"assets.1.{field}", value))
    assert len(problems) == 1 and problems[0].startswith(f"assets[1].{field}: ") and fragment in problems[0], problems


def test_asset_registrar_other_than_the_issuer() -> None:
    asset = first_asset(with_field("assets.0.registrar", address(BANK)))
    assert (asset.terms.issuer, asset.terms.registrar) == (key(TREASURY), key(BANK))


# --- supply and cap ---------------------------------------------------------------


def test_asset_fixed_supply() -> None:
    asset = first_asset(with_field("assets.0.supply", "fixed"))
    assert not asset.terms.reissuable and asset.allocations == ((key(TREASURY), 100_000_000),)


@pytest.mark.parametrize("supply", ["Fixed", "minted", "", True, 1, None])
def test_invalid_asset_supply(supply: object) -> None:
    problems = problems_of(with_field("assets.0.supply", supply))
    assert problems == [f'assets[0].supply: must be "reissuable" or "fixed", got {json.dumps(supply)}']


def test_invalid_asset_supply_missing() -> None:
    assert problems_of(without_field("assets.1.supply")) == ["assets[1].supply: missing"]


@pytest.mark.parametrize("cap", [100_000_000, 100_000_001, MAX_SUPPLY])
def test_asset_cap(cap: int) -> None:
    assert first_asset(with_field("assets.0.cap", cap)).terms.cap == cap


@pytest.mark.parametrize("cap", [0, -1, MAX_SUPPLY + 1, 1.5, "1000", True, None])
def test_invalid_asset_cap(cap: object) -> None:
    problems = problems_of(with_field("assets.0.cap", cap))
    assert problems == [f"assets[0].cap: must be a positive integer, got {json.dumps(cap)}"]


def test_invalid_asset_cap_on_a_fixed_supply() -> None:
    document = with_field("assets.0.supply", "fixed")
    document["assets"][0]["cap"] = 200_000_000
    assert problems_of(document) == ["assets[0].cap: only a reissuable asset has a cap: a fixed supply is its own cap"]


def test_invalid_asset_cap_below_the_allocations() -> None:
    allocations = [{"address": address(21), "amount": 60}, {"address": address(22), "amount": 41}]
    document = with_field("assets.0.allocations", allocations)
    document["assets"][0]["cap"] = 100
    assert problems_of(document) == ["assets[0].allocations: amounts total 101, more than the cap 100"]


@pytest.mark.parametrize("allocations", [None, []])
def test_invalid_asset_fixed_without_allocations(allocations: list[Any] | None) -> None:
    document = with_field("assets.1.supply", "fixed")
    if allocations is None:
        del document["assets"][1]["allocations"]
    else:
        document["assets"][1]["allocations"] = allocations
    problems = problems_of(document)
    assert problems == ["assets[1].allocations: an asset whose supply is fixed needs a positive opening supply"]


def test_asset_reissuable_without_allocations() -> None:
    """A reissuable asset may start with no supply: its issuer mints it later."""
    genesis = parse_genesis(without_field("assets.1.allocations"))
    assert genesis.assets[1].allocations == ()


# --- policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"), [("open", TransferPolicy.OPEN), ("restricted", TransferPolicy.RESTRICTED)]
)
def test_asset_policy(policy: str, expected: TransferPolicy) -> None:
    assert first_asset(with_field("assets.0.policy", policy)).terms.policy is expected


@pytest.mark.parametrize("policy", ["closed", "Open", "RESTRICTED", "", 1, None])
def test_invalid_asset_policy(policy: object) -> None:
    problems = problems_of(with_field("assets.0.policy", policy))
    assert problems == [f'assets[0].policy: must be "open" or "restricted", got {json.dumps(policy)}']


# --- expiry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expiry_ms"),
    [
        ("2027-01-01T00:00:00Z", NEW_YEAR_MS),
        ("2027-01-01T00:00:00.250+00:00", NEW_YEAR_MS + 250),
        ("2026-11-23T00:00:00.001Z", GENESIS_TIME_MS + 1),  # a millisecond after genesis
    ],
)
def test_asset_expiry(text: str, expiry_ms: int) -> None:
    assert first_asset(with_field("assets.0.expiry", text)).terms.expiry_ms == expiry_ms


@pytest.mark.parametrize(
    "text", ["2027-01-01", "2027-01-01T09:00:00+09:00", "2027-02-30T00:00:00Z", "next year", 1798761600, None]
)
def test_invalid_asset_expiry_not_rfc_3339(text: object) -> None:
    assert_problem(with_field("assets.0.expiry", text), "assets[0].expiry")
    assert len(problems_of(with_field("assets.0.expiry", text))) == 1


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T00:00:00Z",  # at genesis: the asset would be born lapsed
        "2026-11-22T23:59:59.999Z",
        "2000-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",  # 0 ms, which stands for "never" in the asset's terms
    ],
)
def test_invalid_asset_expiry_not_after_genesis(text: str) -> None:
    problems = problems_of(with_field("assets.1.expiry", text))
    assert problems == ["assets[1].expiry: must be after genesis_time (2026-11-23T00:00:00Z)"]


def test_invalid_asset_expiry_follows_the_genesis_time() -> None:
    document = with_field("genesis_time", "2027-06-01T00:00:00Z")
    document["assets"][0]["expiry"] = "2027-01-01T00:00:00Z"
    assert problems_of(document) == ["assets[0].expiry: must be after genesis_time (2027-06-01T00:00:00Z)"]


# --- allocations ----------------------------------------------------------------


def test_asset_allocations_total_may_reach_the_largest_supply() -> None:
    allocations = [{"address": address(21), "amount": MAX_SUPPLY - 1}, {"address": address(22), "amount": 1}]
    asset = first_asset(with_field("assets.0.allocations", allocations))
    assert sum(amount for _, amount in asset.allocations) == MAX_SUPPLY


def test_asset_one_account_may_hold_several_assets() -> None:
    document = with_field("assets.1.allocations.0.address", address(TREASURY))
    genesis = parse_genesis(document)
    assert [asset.allocations[0][0] for asset in genesis.assets] == [key(TREASURY), key(TREASURY)]


def test_invalid_asset_allocation_negative_amount() -> None:
    problems = problems_of(with_field("assets.0.allocations.0.amount", -5))
    assert problems == ["assets[0].allocations[0].amount: must be a positive integer, got -5"]


@pytest.mark.parametrize("amount", [0, True, 1.5, 100.0, "100", None, MAX_SUPPLY + 1])
def test_invalid_asset_allocation_amount(amount: object) -> None:
    document = with_field("assets.0.allocations.0.amount", amount)
    assert_problem(document, "assets[0].allocations[0].amount", "must be a positive integer")


def test_invalid_asset_allocation_address() -> None:
    document = with_field("assets.1.allocations.0.address", address(BANK, "nac"))
    assert_problem(document, "assets[1].allocations[0].address", "'nac'")


def test_invalid_asset_allocation_duplicate_address() -> None:
    # Bech32m addresses may be written in upper case: still the same account.
    allocations = [{"address": address(21), "amount": 1}, {"address": address(21).upper(), "amount": 2}]
    problems = problems_of(with_field("assets.0.allocations", allocations))
    assert problems == ["assets[0].allocations[1].address: duplicate of assets[0].allocations[0].address"]


def test_invalid_asset_allocations_total() -> None:
    allocations = [{"address": address(21), "amount": MAX_SUPPLY}, {"address": address(22), "amount": 1}]
    problems = problems_of(with_field("assets.0.allocations", allocations))
    total = MAX_SUPPLY + 1
    assert problems == [
        f"assets[0].allocations: amounts total {total}, more than the largest possible supply {MAX_SUPPLY}"
    ]


@pytest.mark.parametrize(("allocations", "problem"), [
    ({}, "assets[0].allocations: expected an array, got an object"),
    (["tnac1"], "assets[0].allocations[0]: expected an object, got text"),
    ([{"address": address(21)}], "assets[0].allocations[0].amount: missing"),
    ([{"address": address(21), "amount": 1, "memo": "x"}], "assets[0].allocations[0].memo: unknown field"),
])
def test_invalid_asset_allocations_shape(allocations: object, problem: str) -> None:
    assert problems_of(with_field("assets.0.allocations", allocations)) == [problem]


# --- the asset as a whole -------------------------------------------------------


def test_invalid_asset_unknown_and_missing_fields() -> None:
    document = valid_document()
    document["assets"][1]["symbol"] = "JPYT"
    del document["assets"][1]["issuer"]
    assert problems_of(document) == ["assets[1].symbol: unknown field", "assets[1].issuer: missing"]


@pytest.mark.parametrize(("asset", "kind"), [("NAC", "text"), (["NAC"], "an array"), (None, "null")])
def test_invalid_asset_not_an_object(asset: object, kind: str) -> None:
    assert problems_of(with_field("assets.1", asset)) == [f"assets[1]: expected an object, got {kind}"]


def test_invalid_asset_every_problem_at_once() -> None:
    """The rules across an asset's fields are checked even where another field is wrong,
    and each asset's problems are reported with the others'."""
    document = valid_document()
    document["assets"][0].update(supply="fixed", cap=500, name="", expiry="2026-01-01T00:00:00Z")
    document["assets"][1].update(id="jpyt", cap=10)
    problems = problems_of(document)
    assert problems == [
        'assets[0].name: must be 1 to 64 printable characters, not only spaces, got ""',
        "assets[0].cap: only a reissuable asset has a cap: a fixed supply is its own cap",
        "assets[0].expiry: must be after genesis_time (2026-11-23T00:00:00Z)",
        f"assets[1].id: asset id 'jpyt' is {ID_RULE}, starting with a letter (e.g. NAC, NISHI-2031-01)",
        "assets[1].allocations: amounts total 100000000, more than the cap 10",
    ]


# --- the list of assets -----------------------------------------------------------


def test_genesis_without_assets() -> None:
    """A network may start with no asset: its issuers issue them later."""
    genesis = parse_genesis(with_field("assets", []))
    assert genesis.assets == () and genesis.default_asset is None
    _, changes = genesis_block(genesis)
    state = MemoryState()
    state.commit(changes)
    assert state.assets() == {}
    assert state.load_account(key(TREASURY)).roles == Role.ISSUER
    assert state.load_account(key(BANK)).roles == Role.ISSUER


def test_default_asset_is_the_first() -> None:
    assert parse_genesis(valid_document()).default_asset == "NAC"
    assert parse_genesis(with_field("assets", [jpyt_document(), nac_document()])).default_asset == "JPYT"


@pytest.mark.parametrize("count", [1, MAX_GENESIS_ASSETS])
def test_assets_count(count: int) -> None:
    assets = [{**minimal_asset(), "id": f"V-{index}"} for index in range(count)]
    assert len(parse_genesis(with_field("assets", assets)).assets) == count


def test_invalid_too_many_assets() -> None:
    assets = [{**minimal_asset(), "id": f"V-{index}"} for index in range(MAX_GENESIS_ASSETS + 1)]
    problems = problems_of(with_field("assets", assets))
    assert problems == [f"assets: must hold 0 to 64 entries, got {MAX_GENESIS_ASSETS + 1}"]


@pytest.mark.parametrize(("assets", "kind"), [({}, "an object"), ("NAC", "text"), (None, "null")])
def test_invalid_assets_not_a_list(assets: object, kind: str) -> None:
    assert problems_of(with_field("assets", assets)) == [f"assets: expected an array, got {kind}"]


def test_invalid_assets_missing() -> None:
    assert problems_of(without_field("assets")) == ["assets: missing"]


# --- round trips ----------------------------------------------------------------


def test_asset_round_trips_through_to_json() -> None:
    document = with_asset(
        {
            **minimal_asset(),
            "cap": 1_000,
            "registrar": address(20),
            "policy": "restricted",
            "expiry": "2027-01-01T00:00:00.250Z",
            "allocations": [{"address": address(21), "amount": 300}],
        }
    )
    genesis = parse_genesis(document)
    text = genesis.to_json()
    assert parse_genesis(json.loads(text)) == genesis
    assert parse_genesis(json.loads(text)).to_json() == text
    written = json.loads(text)["assets"][0]
    assert list(written) == ["id", "name", "decimals", "issuer", "supply", "cap", "registrar", "policy", "expiry",
                             "allocations"]
    assert written["expiry"] == "2027-01-01T00:00:00.250Z"


def test_asset_defaults_written_out_read_the_same() -> None:
    """Defaults spelled out (the issuer as registrar, open, no allocations) give the same
    genesis, hence the same document hash and the same chain, as defaults left out."""
    left_out = parse_genesis(with_asset(minimal_asset()))
    spelled_out = parse_genesis(
        with_asset({**minimal_asset(), "registrar": address(TREASURY), "policy": "open", "allocations": []})
    )
    assert spelled_out == left_out
    assert spelled_out.document_hash() == left_out.document_hash()
    written = json.loads(left_out.to_json())["assets"][0]
    assert "registrar" not in written and "cap" not in written and "expiry" not in written
    assert (written["policy"], written["allocations"]) == ("open", [])
