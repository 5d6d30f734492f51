"""``mura asset issue|list|info|holders``, ``mura holder approve|revoke`` and ``mura freeze|unfreeze``
against the package's real node process. The node is shared, so each test issues assets of
its own, with ids no other test uses."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
from click.testing import Result

from mura.cli.session import EXIT_REFUSED, EXIT_USAGE

from .conftest import Mura
from .test_cli import assert_one_line_error

_SERIAL = itertools.count()


@pytest.fixture
def asset_id() -> str:
    """An asset id of this test's own."""
    return f"T{os.getpid() % 10_000}-{next(_SERIAL)}"


def new_account(mura: Mura, tmp_path: Path, name: str) -> tuple[Path, str]:
    key_file = tmp_path / f"{name}.key"
    return key_file, mura.json("keygen", "--out", str(key_file))["address"]


def rows_of(text: str) -> dict[str, str]:
    """A label-and-value table as a dict."""
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.strip().splitlines() if line)


# --- issuing and reading ----------------------------------------------------------------------------------


def test_issue_an_asset_with_every_term_and_read_it_back(mura: Mura, tmp_path: Path, asset_id: str) -> None:
    _, registrar = new_account(mura, tmp_path, "registrar")
    treasury = mura.json("address", "--key", str(mura.treasury_key))["address"]
    issued = mura.json("asset", "issue", asset_id, "--name", "Village bond 2031", "--decimals", "2", "--supply",
                       f"5000.00{asset_id}", "--cap", "1000000", "--restricted", "--registrar", registrar,
                       "--expires", "2031-01-01T00:00:00Z", "--key", str(mura.treasury_key), "--wait")
    assert (issued["kind"], issued["status"]) == ("issue_asset", "final")
    assert issued["body"] == {
        "asset": asset_id, "name": "Village bond 2031", "decimals": 2, "supply": 500_000, "reissuable": True,
        "cap": 1_000_000, "registrar": registrar, "policy": "restricted", "expiry_ms": 1_924_992_000_000,
        "expiry_time": "2031-01-01T00:00:00Z",
    }

    info = mura("asset", "info", asset_id)
    assert info.exit_code == 0, info.stderr
    assert rows_of(info.stdout) == {
        "asset": asset_id, "name": "Village bond 2031", "decimals": "2", "issuer": treasury, "registrar": registrar,
        "policy": "restricted", "supply": f"500000 (5,000.00 {asset_id})", "supply rule": "reissuable",
        "cap": f"1000000 (10,000.00 {asset_id})", "holders": "1", "expires": "2031-01-01T00:00:00Z", "expired": "no",
    }
    assert mura.json("asset", "info", asset_id)["expiry_ms"] == 1_924_992_000_000
    holders = mura.json("asset", "holders", asset_id)
    assert holders["holders"] == [{"address": treasury, "balance": 500_000}] and holders["next_cursor"] is None


def test_issue_a_fixed_open_asset_and_list_every_asset(mura: Mura, asset_id: str) -> None:
    issued = mura.json("asset", "issue", asset_id, "--name", "Shop points", "--decimals", "0", "--supply", "300",
                       "--fixed", "--key", str(mura.treasury_key), "--wait")
    assert (issued["body"]["reissuable"], issued["body"]["cap"], issued["body"]["policy"]) == (False, None, "open")
    listed: list[str] = []
    cursor: list[str] = []
    while True:
        page = mura.json("asset", "list", "--limit", "2", *cursor)
        listed += [summary["id"] for summary in page["assets"]]
        if page["next_cursor"] is None:
            break
        cursor = ["--cursor", page["next_cursor"]]
    assert listed == sorted(listed) and {"JPYT", "NAC", asset_id} <= set(listed)
    table = mura("asset", "list", "--limit", "1000").stdout
    assert re.search(rf"^{asset_id}\s+Shop points\s+0\s+300 \(300 {asset_id}\)\s+1\s+open\s+fixed$", table,
                     re.MULTILINE), table
    assert re.search(r"^NAC\s+Nishiawakura Coin\s+2\s+\d+ \([\d,.]+ NAC\)\s+\d+\s+open\s+reissuable$", table,
                     re.MULTILINE), table
    first = mura("asset", "list", "--limit", "1").stdout
    assert re.search(rf"^next page: mura --rpc {mura.url} asset list --limit 1 --cursor \S+$", first, re.MULTILINE)


def test_holders_in_pages_and_at_a_past_height(mura: Mura, tmp_path: Path, asset_id: str) -> None:
    mura.json("asset", "issue", asset_id, "--name", "Vouchers", "--decimals", "0", "--supply", "100",
              "--key", str(mura.treasury_key), "--wait")
    before = mura.json("status")["height"]
    accounts = [new_account(mura, tmp_path, f"holder-{index}")[1] for index in range(3)]
    for amount, address in enumerate(accounts, start=1):
        mura.json("send", f"{amount}{asset_id}", address, "--key", str(mura.treasury_key), "--wait")
    everyone: list[tuple[str, int]] = []
    options = ["--limit", "2"]
    while True:
        page = mura.json("asset", "holders", asset_id, *options)
        everyone += [(holder["address"], holder["balance"]) for holder in page["holders"]]
        if page["next_cursor"] is None:
            break
        options = ["--limit", "2", "--height", str(page["height"]), "--cursor", page["next_cursor"]]
    assert sorted(everyone) == sorted([*zip(accounts, [1, 2, 3], strict=True), (
        mura.json("address", "--key", str(mura.treasury_key))["address"], 94)])
    then = mura.json("asset", "holders", asset_id, "--height", str(before))
    assert [holder["balance"] for holder in then["holders"]] == [100]
    table = mura("asset", "holders", asset_id, "--limit", "1").stdout
    assert re.search(rf"^next page: mura --rpc {mura.url} asset holders {asset_id} --height \d+ --limit 1 "
                     r"--cursor tnac1\w+$", table, re.MULTILINE), table


def test_asset_reading_errors(mura: Mura) -> None:
    assert_one_line_error(mura("asset", "info", "NOPE"), EXIT_REFUSED,
                          r"^mura: error: no asset NOPE on this network \(mura asset list shows those there are\)$")
    assert_one_line_error(mura("asset", "info", "nac"), EXIT_USAGE, r"asset id 'nac' is not uppercase")
    assert_one_line_error(mura("asset", "holders", "NOPE"), EXIT_REFUSED, r"no asset NOPE on this network")
    assert_one_line_error(mura("asset", "holders", "NAC", "--height", "999999999"), EXIT_REFUSED,
                          r"no final block 999999999")
    assert_one_line_error(mura("asset", "holders", "NAC", "--cursor", "xyz"), EXIT_USAGE,
                          r"invalid cursor: not a cursor this node returned")
    assert_one_line_error(mura("asset", "list", "--limit", "0"), EXIT_USAGE, r"--limit")


@pytest.mark.parametrize(
    ("arguments", "pattern"),
    [
        (["bond"], r"asset id 'bond' is not uppercase letters"),
        (["{id}", "--name", " "], r"--name: a name is 1 to 64 printable characters .*not only spaces"),
        (["{id}", "--name", "Village\u202ebond"], r"--name: a name is 1 to 64 printable characters"),
        (["{id}", "--decimals", "19"], r"--decimals"),
        (["{id}", "--supply", "1.5"], r"--supply: amount '1\.5': write 1\.5{id} for whole"),
        (["{id}", "--supply", "0", "--fixed"], r"--supply with --fixed: amount '0': must be at least 1"),
        (["{id}", "--fixed", "--cap", "10"], r"--cap: a fixed supply is its own cap"),
        (["{id}", "--cap", "5"], r"--cap 5 is below --supply 10"),
        (["{id}", "--cap", "5NAC"], r"--cap: amount '5NAC' is not in"),
        (["{id}", "--expires", "2020-01-01T00:00:00Z"], r"--expires: 2020-01-01T00:00:00Z has already passed"),
        (["{id}", "--expires", "tomorrow"], r"--expires: expected an RFC 3339 UTC time"),
        (["{id}", "--registrar", "tnac1xyz"], r"bad address 'tnac1xyz'"),
    ],
    ids=["lowercase-id", "blank-name", "unprintable-name", "decimals",
         "bare-fraction", "fixed-zero", "fixed-with-cap", "cap-below-supply",
         "cap-in-another-asset", "expiry-passed", "expiry-not-a-time", "bad-registrar"],
)
def test_issue_checks_every_term_before_signing(mura: Mura, asset_id: str, arguments: list[str], pattern: str) -> None:
    given = [argument.replace("{id}", asset_id) for argument in arguments]
    terms = {"--name": "Bond", "--decimals": "0", "--supply": "10"}
    for option in list(terms):
        if option in given:
            del terms[option]
    command = ["asset", "issue", *given, *[item for pair in terms.items() for item in pair], "--key",
               str(mura.treasury_key), "--wait"]
    assert_one_line_error(mura(*command), EXIT_USAGE, pattern.replace("{id}", asset_id))
    assert_one_line_error(mura("asset", "info", asset_id), EXIT_REFUSED, r"no asset")


def test_only_an_issuer_issues_and_an_id_is_taken_once(mura: Mura, tmp_path: Path, asset_id: str) -> None:
    key_file, _ = new_account(mura, tmp_path, "alice")
    terms = ["--name", "Bond", "--decimals", "0", "--supply", "1"]
    assert_one_line_error(mura("asset", "issue", asset_id, *terms, "--key", str(key_file)), EXIT_REFUSED,
                          r"transaction refused \(not_an_issuer\)")
    assert_one_line_error(mura("asset", "issue", "NAC", *terms, "--key", str(mura.treasury_key)), EXIT_REFUSED,
                          r"transaction refused \(asset_exists\): asset NAC already exists")


# --- the registrar -----------------------------------------------------------------------------------------


def test_the_registrar_approves_freezes_unfreezes_and_revokes(mura: Mura, tmp_path: Path, asset_id: str) -> None:
    registrar_key, registrar = new_account(mura, tmp_path, "registrar")
    alice_key, alice = new_account(mura, tmp_path, "alice")
    treasury = mura.json("address", "--key", str(mura.treasury_key))["address"]
    mura.json("asset", "issue", asset_id, "--name", "Land shares", "--decimals", "0", "--supply", "100",
              "--restricted", "--registrar", registrar, "--key", str(mura.treasury_key), "--wait")

    def pay(key: Path, to: str) -> Result:
        return mura("send", f"1{asset_id}", to, "--key", str(key), "--wait")

    assert_one_line_error(pay(mura.treasury_key, alice), EXIT_REFUSED, r"\(holder_not_approved\): .* the recipient")
    assert_one_line_error(mura("holder", "approve", asset_id, alice, "--key", str(mura.treasury_key)), EXIT_REFUSED,
                          rf"transaction refused \(not_registrar\): only the registrar of {asset_id}")
    approved = mura.json("holder", "approve", asset_id, alice, "--key", str(registrar_key), "--wait")
    assert (approved["kind"], approved["body"], approved["sender"]) == (
        "approve_holder", {"asset": asset_id, "account": alice}, registrar,
    )
    assert mura.json("send", f"5{asset_id}", alice, "--key", str(mura.treasury_key), "--wait")["status"] == "final"

    frozen = mura("freeze", asset_id, alice, "--key", str(registrar_key), "--wait")
    assert frozen.exit_code == 0 and re.search(r"^kind\s+freeze$", frozen.stdout, re.MULTILINE), frozen.stderr
    assert_one_line_error(pay(alice_key, treasury), EXIT_REFUSED, rf"\(account_frozen\): the sender is frozen in "
                          rf"{asset_id}")
    mura.json("unfreeze", asset_id, alice, "--key", str(registrar_key), "--wait")
    assert mura.json("send", f"1{asset_id}", treasury, "--key", str(alice_key), "--wait")["status"] == "final"
    revoked = mura.json("holder", "revoke", asset_id, alice, "--key", str(registrar_key), "--wait")
    assert revoked["kind"] == "revoke_holder"
    assert_one_line_error(pay(mura.treasury_key, alice), EXIT_REFUSED, r"\(holder_not_approved\)")
    assert mura.balance(alice, asset_id) == 4, "a revoked holder keeps its balance"

    history = mura("history", alice).stdout
    for kind, party in (("revoke_holder", "by"), ("unfreeze", "by"), ("freeze", "by"), ("approve_holder", "by")):
        assert re.search(rf"^\d+:\d+\s+{kind}\s+-\s+{party} {registrar}\s+0x", history, re.MULTILINE), history


def test_registrar_commands_check_their_arguments_first(mura: Mura, tmp_path: Path) -> None:
    _, alice = new_account(mura, tmp_path, "alice")
    key = str(mura.treasury_key)
    assert_one_line_error(mura("freeze", "XYZ", alice, "--key", key), EXIT_USAGE, r"no asset XYZ on this network")
    assert_one_line_error(mura("unfreeze", "nac", alice, "--key", key), EXIT_USAGE, r"asset id 'nac'")
    assert_one_line_error(mura("holder", "revoke", "NAC", "tnac1xyz", "--key", key), EXIT_USAGE, r"bad address")
    assert_one_line_error(mura("holder", "approve", "NAC", alice), EXIT_USAGE, r"Missing option '--key'")
    assert_one_line_error(mura("holder", "bless", "NAC", alice), EXIT_USAGE, r"No such command 'bless'")
