"""``mura bond``, ``mura offering`` and ``mura trade``: the terms file (a table of good and bad
files with the exact problems reported), the trade offer file (written, read back, refused
when altered), and the commands against the package's real node process."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mura.chain.address import encode_address
from mura.chain.keys import SigningKey, load_key, save_key
from mura.chain.transaction import IssueBond, SettleTrade, trade_payload
from mura.cli.bond_dates import actual_days, add_months, is_regular_first_period, read_moment
from mura.cli.bond_terms import (
    TermsContext,
    TermsError,
    key_file_public_key,
    load_terms_document,
    read_terms,
    read_terms_file,
)
from mura.cli.session import CommandError
from mura.cli.trades import OfferError, TradeOffer, encode_offer, read_offer
from mura.tests.node.cluster import Cluster

from .conftest import Mura
from .test_cli import MURA, assert_one_line_error

#: 2027-04-01 00:00 in Japan (2027-03-31T15:00:00Z): "now" for the terms read here.
NOW_MS = 1_806_505_200_000
PREFIX = "tnac"
CHAIN_ID = "bond-test-1"
ASSETS: dict[str, dict[str, Any]] = {
    "JPYT": {"id": "JPYT", "decimals": 0, "policy": "open", "expiry_ms": None},
    "USDC": {"id": "USDC", "decimals": 2, "policy": "open", "expiry_ms": None},
    "CLUB": {"id": "CLUB", "decimals": 0, "policy": "restricted", "expiry_ms": None},
    "VOUCHER": {"id": "VOUCHER", "decimals": 0, "policy": "open", "expiry_ms": 1_900_000_000_000},
}
_DAY_MS = 86_400_000
#: 2027-09-20 and 2028-03-20, 00:00 in Japan: 172 days after now, then 182 more (2028 is a leap year).
SEPTEMBER_MS = NOW_MS + 172 * _DAY_MS
MARCH_MS = SEPTEMBER_MS + 182 * _DAY_MS
BASE: dict[str, Any] = {
    "id": "NISHI-2028",
    "name": "Forest road bond",
    "units": 1000,
    "settlement": "JPYT",
    "face": "10000",
    "rate": "0.455%",
    "frequency": "semiannual",
    "coupons": ["2027-09-20T00:00:00+09:00", "2028-03-20T00:00:00+09:00"],
    "maturity": "2028-03-20T00:00:00+09:00",
}


def context(directory: Path = Path("/nonexistent")) -> TermsContext:
    return TermsContext(PREFIX, NOW_MS, ASSETS.get, directory)


def read(
    changes: Mapping[str, Any], *, drop: tuple[str, ...] = (), directory: Path = Path("/nonexistent")
) -> IssueBond:
    document = {key: value for key, value in {**BASE, **changes}.items() if key not in drop}
    return read_terms(document, context(directory), source="bond.toml")


def problems(changes: Mapping[str, Any], *, drop: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(TermsError) as caught:
        read(changes, drop=drop)
    assert caught.value.exit_code == 2
    return caught.value.problems


# --- good terms ----------------------------------------------------------------------------------------------


def test_the_base_terms_read_into_the_issue_bond_body() -> None:
    assert read({}) == IssueBond(
        asset="NISHI-2028", name="Forest road bond", units=1000, registrar=b"", policy="restricted",
        settlement="JPYT", face=10_000, rate=4_550, frequency=2, first_period_days=172,
        coupon_times=(SEPTEMBER_MS, MARCH_MS), maturity_ms=MARCH_MS, issue_ms=NOW_MS, paying=b"", proceeds=b"",
        use_of_proceeds="", green=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        # The face is whole units of the settlement asset, as text or an integer, converted exactly.
        ({"face": "10000"}, "face", 10_000),
        ({"face": 10000}, "face", 10_000),
        ({"settlement": "USDC", "face": "100.00"}, "face", 10_000),
        ({"settlement": "USDC", "face": "0.01"}, "face", 1),
        ({"settlement": "USDC", "face": 100}, "face", 10_000),
        ({"face": "123456789012345678", "units": 1}, "face", 123_456_789_012_345_678),
        # The rate is a percentage, exactly in millionths.
        ({"rate": "0.455%"}, "rate", 4_550),
        ({"rate": "1%"}, "rate", 10_000),
        ({"rate": "0.0001%"}, "rate", 1),
        ({"rate": "0.45500%"}, "rate", 4_550),
        ({"rate": "100%"}, "rate", 1_000_000),
        ({"rate": "2.5 %"}, "rate", 25_000),
        ({"frequency": 4}, "frequency", 4),
        ({"frequency": "annual", "first_period": "regular"}, "frequency", 1),
        ({"frequency": "monthly", "first_period": "regular"}, "frequency", 12),
        # The first period: as given, or computed in Japan time (1 April to 20 September: 172 days).
        ({"first_period": "regular"}, "first_period_days", 0),
        ({"first_period": 45}, "first_period_days", 45),
        ({"coupons": ["2027-10-01T00:00:00+09:00", "2028-04-01T00:00:00+09:00"],
          "maturity": "2028-04-01T00:00:00+09:00"}, "first_period_days", 0),
        ({"rate": "0%", "coupons": []}, "first_period_days", 0),
        # Times: offsets, UTC, TOML dates and times, durations from now.
        ({"issue": "2027-03-31T15:00:00Z"}, "issue_ms", NOW_MS),
        ({"coupons": ["90s", "10m"], "maturity": "1h", "first_period": "regular"}, "coupon_times",
         (NOW_MS + 90_000, NOW_MS + 600_000)),
        ({"maturity": "30d", "first_period": 30, "coupons": ["2d"]}, "maturity_ms", NOW_MS + 30 * 86_400_000),
        ({"policy": "open", "green": True, "use_of_proceeds": "forest road repair"}, "policy", "open"),
        ({"use_of_proceeds": "森林の道"}, "use_of_proceeds", "森林の道"),
    ],
)
def test_good_terms(changes: dict[str, Any], field: str, expected: Any) -> None:
    body = read(changes)
    assert getattr(body, field) == expected


def test_accounts_are_addresses_or_key_files_beside_the_terms(tmp_path: Path) -> None:
    paying = SigningKey.generate()
    save_key(tmp_path / "paying.key", paying)
    registrar = encode_address(b"\x07" * 32, PREFIX)
    body = read({"paying": "paying.key", "registrar": registrar}, directory=tmp_path)
    assert (body.paying, body.registrar, body.proceeds) == (paying.public_key, b"\x07" * 32, b"")


def test_an_encrypted_key_file_gives_its_public_key_without_its_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MURA_KEY_PASSPHRASE", raising=False)
    key = SigningKey.generate()
    save_key(tmp_path / "proceeds.key", key, passphrase="correct horse")
    assert key_file_public_key(str(tmp_path / "proceeds.key")) == key.public_key
    assert read({"proceeds": "proceeds.key"}, directory=tmp_path).proceeds == key.public_key
    (tmp_path / "broken.key").write_text('{"type": "ed25519", "encryption": {}}')
    assert problems_in({"paying": "broken.key"}, tmp_path) == [
        f"paying: key file {tmp_path}/broken.key has no public key in clear"]


def problems_in(changes: Mapping[str, Any], directory: Path) -> list[str]:
    with pytest.raises(TermsError) as caught:
        read(changes, directory=directory)
    return caught.value.problems


# --- bad terms: every problem, each with its field -------------------------------------------------------------

_NOT_A_TIME = ("is neither an RFC 3339 time like 2027-03-20T00:00:00Z or 2027-03-20T09:00:00+09:00 nor a duration "
               "from now like 90s, 10m, 2h or 30d")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"face": 100.5}, ['face: 100.5 is a floating-point number, which is inexact: write the amount as text, '
                           'e.g. "100.50"']),
        ({"face": "100.5"}, ["face: '100.5': JPYT has 0 decimals"]),
        ({"face": "10,000"}, ['face: \'10,000\' is not an amount in whole units of JPYT, like "10000" or "100.00"']),
        ({"face": "1e4"}, ['face: \'1e4\' is not an amount in whole units of JPYT, like "10000" or "100.00"']),
        ({"face": "0"}, ["face: '0' is out of range: from 1 smallest unit to 18446744073709551615"]),
        ({"units": 2**63, "face": "10000"},
         ["face: face times units is over the largest amount, 18446744073709551615 smallest units"]),
        ({"rate": "abc%"}, ['rate: \'abc%\' is not a percentage like "0.455%"']),
        ({"rate": "0.455"}, ['rate: \'0.455\' is not a percentage like "0.455%"']),
        ({"rate": 0.455}, ['rate: expected a percentage in text, like "0.455%", got the floating-point number 0.455']),
        ({"rate": "0.00001%"}, ["rate: '0.00001%' is more precise than the chain counts: at most 4 decimals "
                                "(0.0001 % is one millionth)"]),
        ({"rate": "100.5%"}, ["rate: '100.5%' is over 100%"]),
        ({"rate": "0%"}, ['rate: a bond with coupons pays a rate above "0%"']),
        ({"coupons": []}, ["coupons: a bond with a rate above 0% lists its coupon times"]),
        ({"units": "10"}, ["units: expected a whole number, got the text '10'"]),
        ({"units": 0}, ["units: 0 is out of range: from 1 to 18446744073709551615"]),
        ({"units": True}, ["units: expected a whole number, got true (true or false)"]),
        ({"frequency": "biweekly"},
         ["frequency: 'biweekly' is not one of 1, 2, 4, 12, annual, semiannual, quarterly, monthly"]),
        ({"frequency": 3}, ["frequency: 3 is not one of 1, 2, 4, 12, annual, semiannual, quarterly, monthly"]),
        ({"coupons": ["2028-03-20T00:00:00+09:00", "2027-09-20T00:00:00+09:00"]},
         ["coupons[1]: 2027-09-19T15:00:00Z is not after coupons[0] (2028-03-19T15:00:00Z)"]),
        ({"coupons": ["2027-03-20T00:00:00+09:00"]},
         ["coupons[0]: 2027-03-19T15:00:00Z is not after issue (2027-03-31T15:00:00Z)"]),
        ({"maturity": "2028-01-01T00:00:00Z"},
         ["maturity: 2028-01-01T00:00:00Z is not after coupons[1] (2028-03-19T15:00:00Z)"]),
        ({"issue": "2026-01-01T00:00:00Z", "coupons": ["2027-01-01T00:00:00Z"], "maturity": "2028-01-01T00:00:00Z"},
         ["coupons[0]: 2027-01-01T00:00:00Z has already passed"]),
        ({"maturity": "2028-03-20T00:00:00"}, [f"maturity: '2028-03-20T00:00:00' {_NOT_A_TIME}"]),
        ({"maturity": "next year"}, [f"maturity: 'next year' {_NOT_A_TIME}"]),
        ({"maturity": "2028-02-30T00:00:00Z"},
         ["maturity: '2028-02-30T00:00:00Z' is not a real date and time: day is out of range for month"]),
        ({"coupons": "2027-09-20T00:00:00Z"},
         ["coupons: expected a list of times, got the text '2027-09-20T00:00:00Z'"]),
        ({"coupons": [None, 5]}, ["coupons[0]: expected a time, got nothing", "coupons[1]: expected a time, got the "
                                  "number 5"]),
        ({"settlement": "XYZ"}, ["settlement: no asset XYZ on this network"]),
        ({"settlement": "CLUB"}, ["settlement: CLUB is restricted; a bond is paid in an open asset"]),
        ({"settlement": "VOUCHER"}, ["settlement: VOUCHER expires; a bond is paid in an asset that never expires"]),
        ({"settlement": "NISHI-2028"}, ["settlement: a bond cannot be paid in itself"]),
        ({"id": "nishi"}, ["id: asset id 'nishi' is not uppercase letters and digits in groups joined by single "
                           "hyphens, starting with a letter (e.g. NAC, NISHI-2031-01)"]),
        ({"name": "\x1b[31m"}, ["name: a name is 1 to 64 printable characters (no control or invisible formatting "
                                "characters), not only spaces"]),
        ({"policy": "closed"}, ["policy: 'closed' is not one of restricted, open"]),
        ({"green": "yes"}, ["green: expected true or false, got the text 'yes'"]),
        ({"paying": "nowhere.key"}, ["paying: 'nowhere.key' is neither an address on this network (address "
                                     "'nowhere.key' has no 'tnac1' prefix) nor a key file"]),
        ({"first_period": 0}, ['first_period: 0 is neither "regular" nor a number of days from 1 to 730']),
        ({"first_period": "odd"}, ['first_period: \'odd\' is neither "regular" nor a number of days from 1 to 730']),
        ({"rate": "0%", "coupons": [], "first_period": 30}, ["first_period: only a bond with coupons has a first "
                                                             "period"]),
        ({"coupons": ["2027-04-01T12:00:00+09:00"], "maturity": "2028-01-01T00:00:00Z"},
         ['first_period: the first coupon falls on the issue date in Japan time: give first_period = "regular" or a '
          "number of days"]),
        ({"coupons": ["2029-09-20T00:00:00+09:00"], "maturity": "2030-01-01T00:00:00Z"},
         ["first_period: the first coupon is 903 days after the issue date; an odd first period is at most 730 days"]),
        ({"use_of_proceeds": "road\nrepair"},
         ["use_of_proceeds: a use of proceeds is 1 to 128 printable characters (no control characters), not only "
          "spaces"]),
        ({"colour": "green"}, ["colour: unknown field (the fields are: id, name, units, settlement, face, rate, "
                               "frequency, coupons, maturity, issue, first_period, paying, paying_consent, "
                               "proceeds, registrar, policy, use_of_proceeds, green)"]),
        ({"paying_consent": "0xabc"}, ["paying_consent: expected 0x and 128 hex digits (the paying account's "
                                       "signature, from mura bond consent)"]),
    ],
)
def test_bad_terms_name_the_field_and_what_is_wrong(changes: dict[str, Any], expected: list[str]) -> None:
    assert problems(changes) == expected


def test_every_problem_is_reported_at_once_in_the_order_of_the_fields() -> None:
    with pytest.raises(TermsError) as caught:
        read({"green": 1, "face": 1.5, "rate": "abc%", "units": -1, "colour": "red"}, drop=("maturity",))
    assert caught.value.message == (
        "bond.toml: 6 problems: units: -1 is out of range: from 1 to 18446744073709551615; face: 1.5 is a "
        'floating-point number, which is inexact: write the amount as text, e.g. "1.50"; rate: \'abc%\' is not a '
        'percentage like "0.455%"; maturity: missing; green: expected true or false, got the number 1; colour: '
        "unknown field (the fields are: id, name, units, settlement, face, rate, frequency, coupons, maturity, "
        "issue, first_period, paying, paying_consent, proceeds, registrar, policy, use_of_proceeds, green)"
    )
    with pytest.raises(TermsError) as caught:
        read_terms({}, context(), source="empty.json")
    assert caught.value.message == (
        "empty.json: 9 problems: id: missing; name: missing; units: missing; settlement: missing; face: missing; "
        "rate: missing; frequency: missing; coupons: missing (write [] for a bond that pays no coupons); maturity: "
        "missing"
    )


# --- the file -------------------------------------------------------------------------------------------------

_TOML = """\
id = "NISHI-2028"
name = "Forest road bond"
units = 1000
settlement = "JPYT"
face = "10000"
rate = "0.455%"
frequency = "semiannual"
coupons = [2027-09-20T00:00:00+09:00, "2028-03-20T00:00:00+09:00"]
maturity = 2028-03-20T00:00:00+09:00
green = true
"""


def test_toml_and_json_files_read_alike(tmp_path: Path) -> None:
    toml_file = tmp_path / "bond.toml"
    toml_file.write_text(_TOML)
    json_file = tmp_path / "bond.json"
    json_file.write_text(json.dumps({**BASE, "green": True}))
    from_toml = read_terms_file(str(toml_file), context(tmp_path))
    assert from_toml == read_terms_file(str(json_file), context(tmp_path))
    assert (from_toml.coupon_times, from_toml.green) == ((SEPTEMBER_MS, MARCH_MS), True)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bond.toml", 'id = "X"\nunits 10\n', "bond.toml: not valid TOML: Expected '=' after a key in a key/value "
                                               "pair (at line 2, column 7)"),
        ("bond.json", '{"id": "X"', "bond.json: not valid JSON: Expecting ',' delimiter: line 1 column 11 (char 10)"),
        ("bond.json", "[1, 2]", "bond.json: expected an object of terms, got a list"),
        ("bond.yaml", "id: X", "bond.yaml: a terms file is TOML or JSON: name it FILE.toml or FILE.json"),
        ("bond.toml", "maturity = 2028-03-20T00:00:00\n", None),
        ("bond.toml", "maturity = 2028-03-20\n", None),
    ],
)
def test_malformed_files_are_one_line(tmp_path: Path, name: str, text: str, expected: str | None) -> None:
    path = tmp_path / name
    path.write_text(text)
    if expected is None:  # loads, and the time's problem is the field's
        with pytest.raises(TermsError) as caught:
            read_terms_file(str(path), context(tmp_path))
        assert [problem for problem in caught.value.problems if problem.startswith("maturity")] in (
            ["maturity: 2028-03-20T00:00:00 has no offset: add Z (UTC) or +09:00 (Japan)"],
            ["maturity: 2028-03-20 is not a date and time with its offset, like 2027-03-20T00:00:00+09:00"],
        )
        return
    with pytest.raises(CommandError) as caught_file:
        load_terms_document(str(path))
    assert caught_file.value.message.replace(str(tmp_path) + "/", "") == expected


def test_a_missing_or_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"terms file .*missing.toml does not exist"):
        load_terms_document(str(tmp_path / "missing.toml"))
    (tmp_path / "binary.toml").write_bytes(b"id = \xff\n")
    with pytest.raises(CommandError, match=r"binary.toml is not UTF-8 text \(byte 5\)"):
        load_terms_document(str(tmp_path / "binary.toml"))
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(CommandError, match=r"folder\.toml: Is a directory"):
        load_terms_document(str(tmp_path / "folder.toml"))
    os.mkfifo(tmp_path / "pipe.toml")  # read, it would wait for a writer for ever
    with pytest.raises(CommandError, match=r"pipe\.toml is not a regular file"):
        load_terms_document(str(tmp_path / "pipe.toml"))


# --- dates, in Japan time -----------------------------------------------------------------------------------


def ms(text: str) -> int:
    moment, problem = read_moment(text, NOW_MS)
    assert problem is None and moment is not None
    return moment


def test_first_periods_are_counted_in_japan_time() -> None:
    # 1 April to 20 September 2027: from 2 April to 20 September, 172 days.
    assert actual_days(ms("2027-04-01T00:00:00+09:00"), ms("2027-09-20T00:00:00+09:00")) == 172
    assert not is_regular_first_period(ms("2027-04-01T00:00:00+09:00"), ms("2027-09-20T00:00:00+09:00"), 2)
    # 1 March to 1 September in Japan is regular, though in UTC it is 28 February to 31 August.
    issue, coupon = ms("2027-02-28T15:00:00Z"), ms("2027-08-31T15:00:00Z")
    assert is_regular_first_period(issue, coupon, 2)
    assert not is_regular_first_period(issue, coupon, 4)
    assert actual_days(issue, coupon) == 184
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)
    assert add_months(date(2028, 8, 31), 6) == date(2029, 2, 28)
    assert add_months(date(2027, 12, 15), 1) == date(2028, 1, 15)


# --- the trade offer file ------------------------------------------------------------------------------------


def signed_offer(seller: SigningKey, buyer: SigningKey, *, signer: str = "seller") -> TradeOffer:
    trade = SettleTrade("NISHI-2028", seller.public_key, buyer.public_key, 3, 30_300, NOW_MS + 600_000, b"r" * 16,
                        b"")
    key = seller if signer == "seller" else buyer
    signature = key.sign(trade_payload(CHAIN_ID, trade))
    signed = SettleTrade(trade.bond, trade.seller, trade.buyer, trade.units, trade.amount, trade.deadline_ms,
                         trade.reference, signature)
    return TradeOffer(CHAIN_ID, signed, "JPYT", signer)


def test_an_offer_file_reads_back_as_written() -> None:
    seller, buyer = SigningKey.generate(), SigningKey.generate()
    for signer in ("seller", "buyer"):
        offer = signed_offer(seller, buyer, signer=signer)
        document = json.loads(json.dumps(encode_offer(offer, PREFIX)))
        assert read_offer(document, prefix=PREFIX, chain_id=CHAIN_ID, source="trade.json") == offer
        assert offer.acceptor == (buyer if signer == "seller" else seller).public_key


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"units": 4}, "the seller's signature does not match these terms: the file was altered or signed by "
                       "another key"),
        ({"amount": 3030}, "the seller's signature does not match these terms"),
        ({"signed_by": "buyer"}, "the buyer's signature does not match these terms"),
        ({"reference": "0x" + "72" * 15 + "73"}, "the seller's signature does not match"),
        ({"deadline_ms": NOW_MS + 600_001}, "deadline and deadline_ms disagree"),
        ({"chain_id": "mainnet"}, "it is for the network 'mainnet', this node runs 'bond-test-1'"),
        ({"format": "mura-key"}, "not an offer: its format is not 'mura-trade-offer'"),
        ({"version": 2}, "version 2; this version of mura reads version 1"),
        ({"units": 1.0}, "units: expected a whole number from 1 to 18446744073709551615"),
        ({"units": True}, "units: expected a whole number from 1 to 18446744073709551615"),
        ({"amount": -5}, "amount: expected a whole number from 1 to 18446744073709551615"),
        ({"seller": "nac1qz46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4snvmw07"},
         "seller: address is for network 'nac', this network uses 'tnac'"),
        ({"reference": "0x0102"}, "reference: expected 8 to 32 bytes"),
        ({"signature": "0xAB"}, "signature: expected 0x and lower-case hex"),
        ({"signature": "0x" + "ab" * 63}, "signature: expected 64 bytes"),
        ({"bond": "\x1b[2J"}, "bond: expected short text"),
        ({"extra": 1}, "unexpected extra"),
    ],
)
def test_an_altered_offer_file_is_refused(change: dict[str, Any], expected: str) -> None:
    seller, buyer = SigningKey.generate(), SigningKey.generate()
    document = {**encode_offer(signed_offer(seller, buyer), PREFIX), **change}
    with pytest.raises(OfferError) as caught:
        read_offer(document, prefix=PREFIX, chain_id=CHAIN_ID, source="trade.json")
    assert caught.value.message.startswith(f"offer file trade.json: {expected}")
    assert caught.value.message.endswith("; nothing was signed") and caught.value.exit_code == 2


def test_an_offer_missing_a_field_or_not_an_object_is_refused() -> None:
    seller, buyer = SigningKey.generate(), SigningKey.generate()
    document = encode_offer(signed_offer(seller, buyer), PREFIX)
    del document["signature"]
    with pytest.raises(OfferError, match="missing signature"):
        read_offer(document, prefix=PREFIX, chain_id=CHAIN_ID, source="trade.json")
    with pytest.raises(OfferError, match="not an offer: expected a JSON object"):
        read_offer([document], prefix=PREFIX, chain_id=CHAIN_ID, source="trade.json")
    same = {**encode_offer(signed_offer(seller, buyer), PREFIX), "buyer": encode_address(seller.public_key, PREFIX)}
    with pytest.raises(OfferError, match="the seller and the buyer are one account"):
        read_offer(same, prefix=PREFIX, chain_id=CHAIN_ID, source="trade.json")


# --- the commands against the package's real node ---------------------------------------------------------------

_SERIAL = itertools.count()


def new_account(mura: Mura, tmp_path: Path, name: str) -> tuple[str, str]:
    key_file = tmp_path / f"{name}.key"
    return str(key_file), mura.json("keygen", "--out", str(key_file))["address"]


def write_terms(path: Path, bond: str, **changes: Any) -> str:
    terms = {"id": bond, "name": "Road bond", "units": 5, "settlement": "JPYT", "face": "10000", "rate": "1.25%",
             "frequency": "semiannual", "first_period": "regular", "coupons": ["14s", "18s"], "maturity": "22s",
             "use_of_proceeds": "forest road repair", **changes}
    path.write_text(json.dumps(terms))
    return str(path)


def test_a_bond_from_its_terms_file_to_its_redemption(mura: Mura, tmp_path: Path) -> None:
    bond = f"ROAD-{os.getpid() % 10_000}-{next(_SERIAL)}"
    treasury_key, bank_key = str(mura.treasury_key), str(mura.bank_key)
    treasury = mura.json("address", "--key", treasury_key)["address"]
    hana_key, hana = new_account(mura, tmp_path, "hana")
    kenji_key, kenji = new_account(mura, tmp_path, "kenji")
    for address, amount in ((hana, "50000JPYT"), (kenji, "50000JPYT"), (treasury, "5000JPYT")):
        mura.json("send", amount, address, "--key", bank_key, "--wait")

    # A terms file with problems is refused in one line, naming each, and nothing is sent.
    nonce = mura.json("balance", treasury)["nonce"]
    bad = write_terms(tmp_path / "bad.json", bond, face=1.5, rate="abc%")
    refused = mura("bond", "issue", "--terms", bad, "--key", treasury_key)
    assert_one_line_error(refused, 2, r"bad\.json: 2 problems: face: 1\.5 is a floating-point number.*; rate: "
                          r"'abc%' is not a percentage")
    assert mura.json("balance", treasury)["nonce"] == nonce

    issued = mura.json("bond", "issue", "--terms", write_terms(tmp_path / "bond.json", bond), "--key", treasury_key,
                       "--wait")
    assert (issued["kind"], issued["status"], issued["body"]["rate"], issued["body"]["face"]) == (
        "issue_bond", "final", 12_500, 10_000)
    info = mura.json("bond", "info", bond)
    assert [payment["status"] for payment in info["payments"]] == ["scheduled"] * 3
    assert [payment["amount_per_unit"] for payment in info["payments"]] == [62, 62, 10_000]
    assert "scheduled" in mura("bond", "info", bond).stdout

    mura.json("offering", "open", bond, "--units", "5", "--price", "10000JPYT", "--end", "9s", "--key",
              treasury_key, "--wait")
    for address in (hana, kenji):
        mura.json("holder", "approve", bond, address, "--key", treasury_key, "--wait")
    mura.json("offering", "subscribe", bond, "3", "--key", kenji_key, "--wait")
    mura.json("offering", "cancel", bond, "--key", kenji_key, "--wait")
    assert mura.balance(kenji, "JPYT") == 50_000
    # Hana asks for 4, Kenji for 3: 7 for 5 units. Pro rata 2.86 and 2.14: 2 each, and the unit
    # left goes to the larger remainder, Hana's.
    subscribed = mura.json("offering", "subscribe", bond, "4", "--key", hana_key, "--wait")
    assert (subscribed["body"], subscribed["status"]) == ({"bond": bond, "units": 4}, "final")
    mura.json("offering", "subscribe", bond, "3", "--key", kenji_key, "--wait")
    status = mura.json("offering", "status", bond)
    assert (status["offering"]["phase"], status["offering"]["subscribed"]) == ("subscribing", 7)

    allotted = mura.json("bond", "wait", bond, "--allotted", "--timeout", "60")
    assert allotted["offering"]["status"] == "settled"
    subscriptions = mura.json("offering", "status", bond)["subscriptions"]
    assert [(item["subscriber"], item["allotted"], item["refunded"]) for item in subscriptions] == [
        (hana, 3, 10_000), (kenji, 2, 10_000)]
    assert (mura.balance(hana, bond), mura.balance(kenji, bond)) == (3, 2)

    spent = mura.json("bond", "spend", bond, "--to", kenji, "--amount", "1000JPYT", "--purpose", "road survey",
                      "--key", treasury_key, "--wait")
    assert spent["body"]["purpose"] == "road survey"
    use = mura.json("bond", "proceeds", bond)
    assert (use["raised"], use["spent"], use["purposes"]) == (50_000, 1000, [{"purpose": "road survey",
                                                                              "spent": 1000}])

    # The first coupon: 62.5 JPYT a unit, each holder's share rounded down: 187 and 125.
    paid = mura.json("bond", "wait", bond, "--paid", "0", "--timeout", "60")
    assert (paid["status"], paid["record"]["amount"], paid["record"]["retained"]) == ("paid", 312, 0)

    # Hana buys a unit from Kenji: she signs the offer as the buyer, he accepts and sends it.
    offer_file = tmp_path / "trade.json"
    offered = mura.json("trade", "offer", "--bond", bond, "--units", "1", "--price-total", "10050JPYT", "--seller",
                        kenji, "--deadline", "5m", "--out", str(offer_file), "--key", hana_key)
    assert (offered["signed_by"], offered["seller"], offered["buyer"], offered["amount"]) == (
        "buyer", kenji, hana, 10_050)
    assert json.loads(offer_file.read_text()) == offered
    own = mura("trade", "accept", str(offer_file), "--yes", "--key", hana_key)
    assert_one_line_error(own, 2, r"this offer is for its seller, tnac1\w+; your key is tnac1\w+")
    unasked = mura("trade", "accept", str(offer_file), "--key", kenji_key)
    assert_one_line_error(unasked, 2, "not accepted: give --yes to accept these terms without being asked")
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**offered, "amount": 10}))
    refused_offer = mura("trade", "accept", str(tampered), "--yes", "--key", kenji_key)
    assert_one_line_error(refused_offer, 2, "the buyer's signature does not match these terms")
    accepted = mura("trade", "accept", str(offer_file), "--yes", "--key", kenji_key, "--wait")
    assert accepted.exit_code == 0, accepted.stderr
    assert "price      10050 (10,050 JPYT)" in accepted.stdout and "status       final" in accepted.stdout
    assert (mura.balance(hana, bond), mura.balance(kenji, bond)) == (4, 1)
    again = mura("trade", "accept", str(offer_file), "--yes", "--key", kenji_key, "--wait")
    assert_one_line_error(again, 1, r"transaction refused \(trade_settled\)")

    # The second coupon: 250 and 62 (62.5 rounded down); then the redemption at face value.
    mura.json("bond", "wait", bond, "--paid", "1", "--timeout", "60")
    redeemed = mura.json("bond", "wait", bond, "--redeemed", "--timeout", "60")
    assert (redeemed["kind"], redeemed["record"]["amount"]) == ("redemption", 50_000)
    shares = mura.json("bond", "payments", bond, "--holder", kenji)["shares"]
    assert [(share["index"], share["units"], share["amount"]) for share in shares] == [
        (0, 2, 125), (1, 1, 62), (2, 1, 10_000)]
    # Kenji: 50,000 - 30,000 paid + 10,000 refunded + 1,000 for the survey + 125 + 10,050 + 62 + 10,000.
    assert mura.balance(kenji, "JPYT") == 51_237
    # Hana: 50,000 - 40,000 + 10,000 + 187 - 10,050 + 250 + 40,000.
    assert mura.balance(hana, "JPYT") == 50_387
    final = mura.json("bond", "info", bond)
    assert final["redeemed"] and [payment["status"] for payment in final["payments"]] == ["paid"] * 3
    assert mura.balance(hana, bond) == 0


def test_bond_commands_refuse_what_is_not_a_bond_in_one_line(mura: Mura, tmp_path: Path) -> None:
    assert_one_line_error(mura("bond", "info", "NAC"), 1, r"NAC is an asset, not a bond \(mura bond list")
    assert_one_line_error(mura("bond", "info", "NOPE"), 1, "no asset NOPE on this network")
    assert_one_line_error(mura("bond", "info", "nope"), 2, "asset id 'nope' is not uppercase")
    assert_one_line_error(mura("bond", "wait", "NAC"), 2, "give one of --allotted, --paid N and --redeemed")
    bond = f"IDLE-{os.getpid() % 10_000}-{next(_SERIAL)}"
    terms = write_terms(tmp_path / "idle.json", bond, coupons=["1h"], maturity="2h", first_period=10)
    treasury = mura.json("address", "--key", str(mura.treasury_key))["address"]
    nonce = mura.json("balance", treasury)["nonce"]
    checked = mura("bond", "issue", "--terms", terms, "--check", "--key", str(mura.treasury_key))
    assert checked.exit_code == 0, checked.stderr
    # 10 days of 1.25 % on 10,000: 3.42 JPYT a unit, 3 rounded down; nothing is sent.
    assert re.search(r"0 +coupon +\S+ \S+ UTC +3 \(3 JPYT\)\n1 +redemption .* 10000 \(10,000 JPYT\)", checked.stdout)
    assert "first period     10 days (odd)" in checked.stdout
    assert mura.json("balance", treasury)["nonce"] == nonce
    mura.json("bond", "issue", "--terms", terms, "--key", str(mura.treasury_key), "--wait")
    assert_one_line_error(mura("offering", "status", bond), 1, f"{bond} has no offering: its issuer opens one")
    waited = mura("bond", "wait", bond, "--paid", "0", "--timeout", "0.5")
    assert_one_line_error(waited, 1, f"payment 0 of {bond} not made within 0.5 s: it is scheduled")
    offer_file = tmp_path / "offer.json"
    offer_file.write_text("{}")
    assert_one_line_error(mura("trade", "offer", "--bond", bond, "--units", "1", "--price-total", "5JPYT", "--buyer",
                               encode_address(b"\x01" * 32, "tnac"), "--out", str(offer_file), "--key",
                               str(mura.treasury_key)), 2, "offer.json exists; it is never overwritten")
    assert_one_line_error(mura("trade", "accept", str(offer_file), "--key", str(mura.treasury_key)), 2,
                          "not an offer: its format is not 'mura-trade-offer'; nothing was signed")


# --- mura demo bond on a four-validator testnet --------------------------------------------------------------

#: Seconds between the demo's offering close, coupons and maturity: short, yet room for the
#: approvals and subscriptions before the offering closes on a busy machine.
DEMO_INTERVAL = 15


@pytest.mark.processes
def test_the_bond_demo_runs_a_bond_to_its_redemption_on_a_testnet(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "testnet", validators=4)
    try:
        cluster.start_all()
        url = f"http://127.0.0.1:{cluster.rpc_ports[2]}"
        demo = subprocess.run(
            [str(MURA), "--rpc", url, "demo", "bond", "--dir", str(cluster.directory), "--interval",
             str(DEMO_INTERVAL)], capture_output=True, text=True, timeout=4 * DEMO_INTERVAL + 120,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr
        assert demo.stderr == ""
        bond = re.search(r"The bond (FOREST-[0-9A-F]{4}) is redeemed", demo.stdout)
        assert bond is not None, demo.stdout[-2000:]
        # Hana, Kenji and Yui asked for 6, 4 and 5 units of 10: allotted 4, 3 and 3.
        assert re.search(r"6 +60000 \(60,000 JPYT\) +4 +20000 \(20,000 JPYT\)", demo.stdout)
        assert re.search(r"4 +40000 \(40,000 JPYT\) +3 +10000 \(10,000 JPYT\)", demo.stdout)
        assert "payment   2 (redemption)" in demo.stdout and "state            redeemed" in demo.stdout
        folder = cluster.directory / "demo" / bond.group(1)
        balances = {}
        for name in ("hana", "kenji", "yui", "contractor"):
            address = encode_address(load_key(folder / f"{name}.key").public_key, cluster.prefix)
            balances[name] = cluster.call(0, "account_getBalance", address, "JPYT")
        # 100,000 paid in; the subscription less its refund; coupons of 45 days (15.41 a unit,
        # rounded down per holder) and then 62.50 a unit; a unit sold by Hana to Yui for 10,100;
        # the redemption at 10,000 a unit.
        assert balances == {
            "hana": 100_000 - 60_000 + 20_000 + 61 + 10_100 + 187 + 30_000,
            "kenji": 100_000 - 40_000 + 10_000 + 46 + 187 + 30_000,
            "yui": 100_000 - 50_000 + 20_000 + 46 - 10_100 + 250 + 40_000,
            "contractor": 20_000,
        }
    finally:
        cluster.close()


def test_a_paying_account_other_than_the_issuer_consents_to_the_terms(mura: Mura, tmp_path: Path) -> None:
    treasury_key = str(mura.treasury_key)
    treasury = mura.json("address", "--key", treasury_key)["address"]
    save_key(tmp_path / "office.key", SigningKey.generate())
    office = mura.json("address", "--key", str(tmp_path / "office.key"))["address"]

    # Named by its key file, the paying account's consent is signed as the bond is issued.
    by_key = f"PAID-{os.getpid() % 10_000}-{next(_SERIAL)}"
    issued = mura.json("bond", "issue", "--terms", write_terms(tmp_path / "by-key.json", by_key, paying="office.key"),
                       "--key", treasury_key, "--wait")
    assert (issued["status"], issued["body"]["paying"]) == ("final", office)
    assert mura.json("bond", "info", by_key)["paying"] == office

    # Named by its address, it must have signed: mura bond consent, over fixed times.
    by_address = f"PAID-{os.getpid() % 10_000}-{next(_SERIAL)}"
    fixed = {"issue": "2027-04-01T00:00:00+09:00", "coupons": ["2027-10-01T00:00:00+09:00"],
             "maturity": "2028-04-01T00:00:00+09:00", "paying": office}
    terms = write_terms(tmp_path / "by-address.json", by_address, **fixed)
    unsigned = mura("bond", "issue", "--terms", terms, "--key", treasury_key)
    assert_one_line_error(unsigned, 2, rf"paying: {office} is not you, so it must agree to pay: give its key file as "
                          r"paying, or its signature as paying_consent \(made with: mura bond consent")
    moving = mura("bond", "consent", "--terms", write_terms(tmp_path / "moving.json", by_address, paying=office),
                  "--issuer", treasury, "--key", str(tmp_path / "office.key"))
    assert_one_line_error(moving, 2, r"the paying account agrees to fixed terms: write issue, maturity, coupons\[0\], "
                          r"coupons\[1\] as RFC 3339 times")
    not_paying = mura("bond", "consent", "--terms", terms, "--issuer", treasury, "--key", treasury_key)
    assert_one_line_error(not_paying, 2, f"paying is {office}, not this key's account {treasury}")
    consented = mura.json("bond", "consent", "--terms", terms, "--issuer", treasury, "--key",
                          str(tmp_path / "office.key"))
    signature = consented["paying_consent"]
    other = write_terms(tmp_path / "other.json", by_address, **{**fixed, "units": 6}, paying_consent=signature)
    assert_one_line_error(mura("bond", "issue", "--terms", other, "--key", treasury_key), 2,
                          "paying_consent: not the paying account's signature of these terms issued by you")
    signed = write_terms(tmp_path / "signed.json", by_address, **fixed, paying_consent=signature)
    issued = mura.json("bond", "issue", "--terms", signed, "--key", treasury_key, "--wait")
    assert (issued["status"], issued["body"]["paying"], issued["body"]["paying_consent"]) == ("final", office,
                                                                                              signature)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"issue": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))},
         "issue: 0001-01-01T00:00:00+14:00 is out of range: from 1970 to 9999"),
        ({"issue": datetime(1969, 12, 31, tzinfo=UTC), "first_period": "regular"},
         "issue: 1969-12-31T00:00:00+00:00 is out of range: from 1970 to 9999"),
        ({"maturity": "999999999d"}, "maturity: '999999999d' is out of range: from 1970 to 9999"),
        ({"paying": "k" * 300}, "paying: 'kkkk"),
    ],
)
def test_times_out_of_range_and_unopenable_paths_are_the_fields_problems(
    changes: dict[str, Any], expected: str
) -> None:
    assert any(problem.startswith(expected) for problem in problems(changes)), problems(changes)


def test_a_json_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bond.json"
    path.write_text('{"id": "A", "id": "B"}')
    with pytest.raises(CommandError, match="not valid JSON: the key 'id' is given twice"):
        load_terms_document(str(path))


def test_an_offer_deadline_past_the_year_9999_is_refused() -> None:
    seller, buyer = SigningKey.generate(), SigningKey.generate()
    document = json.loads(json.dumps(encode_offer(signed_offer(seller, buyer, signer="seller"), PREFIX)))
    document["deadline_ms"] = 2**64 - 1
    with pytest.raises(OfferError, match="deadline_ms: past the year 9999"):
        read_offer(document, prefix=PREFIX, chain_id=CHAIN_ID, source="trade.json")
