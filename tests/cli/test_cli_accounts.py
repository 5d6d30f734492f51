"""``mura send``, ``mint``, ``burn``, ``balance`` and ``history`` with many assets, against the
package's real node process: amounts in each asset's units, memos, balances after past
blocks, and an account's transactions page after page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mura.cli.session import EXIT_REFUSED, EXIT_USAGE

from .conftest import Mura
from .test_cli import assert_one_line_error


def new_account(mura: Mura, tmp_path: Path, name: str) -> tuple[Path, str]:
    key_file = tmp_path / f"{name}.key"
    return key_file, mura.json("keygen", "--out", str(key_file))["address"]


def test_send_in_each_asset_with_a_memo_and_the_balance_shows_them_all(mura: Mura, tmp_path: Path) -> None:
    _, alice = new_account(mura, tmp_path, "alice")
    coin = mura.json("send", "12.50NAC", alice, "--key", str(mura.treasury_key), "--memo", "invoice 7 ✓", "--wait")
    assert (coin["status"], coin["body"]) == (
        "final", {"asset": "NAC", "recipient": alice, "amount": 1250, "memo": "invoice 7 ✓"},
    )
    yen = mura.json("send", "1000", alice, "--asset", "JPYT", "--key", str(mura.bank_key), "--wait")
    assert (yen["body"]["asset"], yen["body"]["amount"], yen["body"]["memo"]) == ("JPYT", 1000, "")
    default = mura.json("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", "3", "--wait")
    assert (default["body"]["asset"], default["body"]["amount"]) == ("NAC", 3)

    shown = mura("tx", coin["hash"])
    assert re.search(r"^memo\s+invoice 7 ✓$", shown.stdout, re.MULTILINE), shown.stdout
    assert re.search(r"^asset\s+NAC$", shown.stdout, re.MULTILINE)
    table = mura("balance", alice)
    assert table.exit_code == 0, table.stderr
    assert re.search(r"^JPYT\s+1000 \(1,000 JPYT\)$", table.stdout, re.MULTILINE), table.stdout
    assert re.search(r"^NAC\s+1253 \(12\.53 NAC\)$", table.stdout, re.MULTILINE), table.stdout
    found = mura.json("balance", alice)
    assert found["balances"] == [
        {"asset": "JPYT", "balance": 1000, "decimals": 0}, {"asset": "NAC", "balance": 1253, "decimals": 2},
    ]


def test_an_account_with_nothing_shows_no_balances(mura: Mura, tmp_path: Path) -> None:
    key_file, alice = new_account(mura, tmp_path, "alice")
    by_key = mura("balance", "--key", str(key_file))
    assert by_key.exit_code == 0 and re.search(r"^no balances$", by_key.stdout, re.MULTILINE), by_key.stdout
    assert mura.json("balance", alice)["balances"] == []
    assert_one_line_error(mura("balance"), EXIT_USAGE, r"give either an ADDRESS or --key FILE")
    assert_one_line_error(mura("balance", alice, "--key", str(key_file)), EXIT_USAGE, r"give either an ADDRESS")


def test_balance_after_a_past_block(mura: Mura, tmp_path: Path) -> None:
    key_file, alice = new_account(mura, tmp_path, "alice")
    yen = mura.json("send", "70JPYT", alice, "--key", str(mura.bank_key), "--wait")["block_height"]
    coin = mura.json("send", "1NAC", alice, "--key", str(mura.treasury_key), "--wait")["block_height"]
    mura.json("send", "70JPYT", mura.json("address", "--key", str(mura.bank_key))["address"], "--key",
              str(key_file), "--wait")

    def balances(height: int) -> list[tuple[str, int]]:
        found = mura.json("balance", alice, "--height", str(height))
        assert found["height"] == height and found["next_cursor"] is None
        return [(item["asset"], item["balance"]) for item in found["balances"]]

    assert balances(yen - 1) == []
    assert balances(yen) == [("JPYT", 70)]
    assert balances(coin) == [("JPYT", 70), ("NAC", 100)]
    assert [(item["asset"], item["balance"]) for item in mura.json("balance", alice)["balances"]] == [("NAC", 100)]
    table = mura("balance", alice, "--height", str(coin)).stdout
    assert re.search(rf"^height\s+{coin}$", table, re.MULTILINE) and re.search(r"^JPYT\s+70 \(70 JPYT\)$", table,
                                                                               re.MULTILINE), table
    assert_one_line_error(mura("balance", alice, "--height", "999999999"), EXIT_REFUSED,
                          r"no final block 999999999; the chain's head is at height \d+")
    assert_one_line_error(mura("balance", alice, "--height", "-1"), EXIT_USAGE, r"'-1' is not a height")


def test_mint_and_burn_name_the_asset_by_suffix_or_option(mura: Mura, tmp_path: Path) -> None:
    _, alice = new_account(mura, tmp_path, "alice")
    bank = mura.json("address", "--key", str(mura.bank_key))["address"]
    minted = mura.json("mint", "500JPYT", alice, "--key", str(mura.bank_key), "--wait")
    assert minted["body"] == {"asset": "JPYT", "recipient": alice, "amount": 500}
    before = mura.balance(bank, "JPYT")
    burned = mura.json("burn", "40", "--asset", "JPYT", "--key", str(mura.bank_key), "--wait")
    assert burned["body"] == {"asset": "JPYT", "amount": 40}
    assert (mura.balance(alice, "JPYT"), mura.balance(bank, "JPYT")) == (500, before - 40)
    refused = mura("mint", "5JPYT", alice, "--key", str(mura.treasury_key))
    assert_one_line_error(refused, EXIT_REFUSED, r"transaction refused \(not_asset_issuer\): only the issuer of JPYT")


def test_amounts_and_assets_that_do_not_fit_send_nothing(mura: Mura, tmp_path: Path) -> None:
    key_file, alice = new_account(mura, tmp_path, "alice")
    mura.json("send", "10NAC", alice, "--key", str(mura.treasury_key), "--wait")
    before = mura.json("balance", alice)
    cases: list[tuple[list[str], str]] = [
        (["5NAC", alice, "--asset", "JPYT"], r"amount '5NAC' is in NAC, but the asset given is JPYT"),
        (["5", alice, "--asset", "XYZ"], r"no asset XYZ on this network \(known: JPYT, NAC"),
        (["1.5JPYT", alice], r"JPYT has 0 decimals"),
        (["5", alice, "--amount", "5"], r"^mura send: error: give the amount once"),
        (["5", alice, "--to", alice], r"^mura send: error: give the recipient once"),
        (["5"], r"^mura send: error: missing the recipient"),
        (["5", alice, "--memo", "x" * 257], r"--memo: 257 bytes in UTF-8; a memo holds at most 256"),
        (["5", alice, "--memo", "é" * 129], r"--memo: 258 bytes in UTF-8"),
        (["5", alice, "--memo", "line\nbreak"], r"--memo: printable text only"),
        (["5", alice, "--memo", "\x1b[2Kforged"], r"--memo: printable text only"),
    ]
    for arguments, pattern in cases:
        assert_one_line_error(mura("send", *arguments, "--key", str(key_file), "--wait"), EXIT_USAGE, pattern)
    after = mura.json("balance", alice)
    assert (after["nonce"], after["pending"], after["balances"]) == (before["nonce"], 0, before["balances"])


def history_page(mura: Mura, address: str, *options: str) -> dict[str, Any]:
    page: dict[str, Any] = mura.json("history", address, *options)
    return page


def test_history_newest_first_page_after_page(mura: Mura, tmp_path: Path) -> None:
    key_file, alice = new_account(mura, tmp_path, "alice")
    sent = [mura.json("send", f"{amount}NAC", alice, "--key", str(mura.treasury_key), "--wait")["hash"]
            for amount in range(1, 4)]
    sent.append(mura.json("send", "7JPYT", alice, "--key", str(mura.bank_key), "--wait")["hash"])
    sent.append(mura.json("send", "1NAC", mura.json("address", "--key", str(mura.treasury_key))["address"],
                          "--key", str(key_file), "--wait")["hash"])

    hashes: list[str] = []
    cursor: list[str] = []
    while True:
        page = history_page(mura, alice, "--limit", "2", *cursor)
        hashes += [transaction["hash"] for transaction in page["transactions"]]
        if page["next_cursor"] is None:
            break
        cursor = ["--cursor", page["next_cursor"]]
    assert hashes == sent[::-1]

    table = mura("history", alice, "--limit", "2")
    assert table.exit_code == 0, table.stderr
    rows = table.stdout.splitlines()
    assert re.match(r"^at\s+kind\s+amount\s+party\s+hash$", rows[0]), rows[0]
    assert re.match(rf"^\d+:0\s+transfer\s+100 \(1\.00 NAC\)\s+to tnac1\w+\s+{sent[-1]}$", rows[1]), rows[1]
    assert re.match(rf"^\d+:0\s+transfer\s+7 \(7 JPYT\)\s+from tnac1\w+\s+{sent[-2]}$", rows[2]), rows[2]
    assert re.fullmatch(rf"next page: mura --rpc {mura.url} history {alice} --limit 2 --cursor \d+:0", rows[-1])
    last = mura("history", alice, "--limit", "5")
    assert "next page" not in last.stdout
    typed_in_capitals = mura("history", alice.upper(), "--limit", "1").stdout.splitlines()
    assert typed_in_capitals[1].split()[5:7] == ["to", mura.json("address", "--key", str(mura.treasury_key))["address"]]


def test_history_of_an_unknown_account_and_bad_cursors(mura: Mura, tmp_path: Path) -> None:
    _, alice = new_account(mura, tmp_path, "alice")
    assert mura.json("history", alice) == {"address": alice, "transactions": [], "next_cursor": None}
    assert "no transactions" in mura("history", alice).stdout
    assert_one_line_error(mura("history", alice, "--cursor", "12"), EXIT_USAGE,
                          r"invalid cursor: not a cursor this node returned: expected HEIGHT:INDEX, got '12'")
    assert_one_line_error(mura("history", alice, "--limit", "101"), EXIT_USAGE, r"--limit")
    assert_one_line_error(mura("history", "tnac1xyz"), EXIT_USAGE, r"bad address 'tnac1xyz'")


def test_wait_for_a_height_and_a_time_and_refuse_odd_options(mura: Mura) -> None:
    head = mura.json("status")["height"]
    reached = mura.json("wait", "--height", str(head + 1))
    assert reached["height"] == head + 1
    timed = mura.json("wait", "--time", "1s")
    assert timed["height"] >= reached["height"]
    cases: list[tuple[list[str], int, str]] = [
        ([], EXIT_USAGE, r"give one of --height, --time and --lapsed"),
        (["--height", "1", "--time", "1s"], EXIT_USAGE, r"give one of --height, --time and --lapsed"),
        (["--time", "999999999d"], EXIT_USAGE, r"--time: 999999999d is past the year 9999"),
        (["--time", "tomorrow"], EXIT_USAGE, r"--time: .*or a duration from now such as 30s"),
        (["--height", "1", "--timeout", "nan"], EXIT_USAGE, r"--timeout"),
        (["--lapsed", "NAC"], 1, r"NAC has no expiry time: it never lapses"),
        (["--height", str(10**9), "--timeout", "0.5"], 1, r"the chain did not reach height 1000000000 within 0.5 s"),
    ]
    for arguments, code, pattern in cases:
        assert_one_line_error(mura("wait", *arguments), code, pattern)
