"""The ``mura`` command against a real node process: a wallet's round trip, each command's
output, and each error as one line on stderr with its exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result

from mura.bench.ports import free_port_range
from mura.chain.keys import load_key
from mura.cli.session import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from mura.genesis.testnet import DEFAULT_TREASURY_AMOUNT
from mura.rpc.wallet import AmountError, amount_asset, format_amount, parse_amount
from mura.tests.node.cluster import Cluster

from .conftest import Mura

MURA = Path(sys.executable).with_name("mura")
NAC = {"id": "NAC", "name": "Nishiawakura Coin", "decimals": 2}
JPYT = {"id": "JPYT", "name": "JPY Token", "decimals": 0}


def run_installed(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a shell would run it."""
    assert MURA.exists(), f"the console script is not installed at {MURA}"
    return subprocess.run([str(MURA), *arguments], capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: Result | subprocess.CompletedProcess[str], exit_code: int, pattern: str) -> None:
    """The command failed with ``exit_code`` and one stderr line matching ``pattern``."""
    code = result.exit_code if isinstance(result, Result) else result.returncode
    stderr = result.stderr
    assert code == exit_code, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert lines[0].startswith("mura")


# --- the round trip ------------------------------------------------------------------------------


def test_keygen_send_wait_balance_end_to_end(mura: Mura, tmp_path: Path) -> None:
    key_file = tmp_path / "alice.key"
    keygen = run_installed("--rpc", mura.url, "--json", "keygen", "--out", str(key_file))
    assert keygen.returncode == 0, keygen.stderr
    alice = json.loads(keygen.stdout)["address"]
    assert alice.startswith("tnac1") and load_key(key_file).public_key.hex() == json.loads(keygen.stdout)["public_key"]

    sent = run_installed("--rpc", mura.url, "--json", "send", "--key", str(mura.treasury_key), "--to", alice,
                         "--amount", "12.50NAC", "--wait")
    assert sent.returncode == 0, sent.stderr
    final = json.loads(sent.stdout)
    assert (final["status"], final["body"]["amount"], final["body"]["recipient"]) == ("final", 1250, alice)
    assert final["block_height"] >= 1

    balance = run_installed("--rpc", mura.url, "balance", alice)
    assert balance.returncode == 0 and balance.stderr == ""
    assert re.search(r"^NAC\s+1250 \(12\.50 NAC\)$", balance.stdout, re.MULTILINE), balance.stdout


def test_an_account_pays_onwards_in_smallest_units(mura: Mura, tmp_path: Path) -> None:
    alice, bob = (mura.json("keygen", "--out", str(tmp_path / f"{name}.key")) for name in ("alice", "bob"))
    mura.json("send", "--key", str(mura.treasury_key), "--to", alice["address"], "--amount", "1000", "--wait")
    paid = mura("send", "--key", str(tmp_path / "alice.key"), "--to", bob["address"], "--amount", "250", "--wait")
    assert paid.exit_code == 0, paid.stderr
    assert re.search(r"^status\s+final in block \d+ at index 0$", paid.stdout, re.MULTILINE), paid.stdout
    assert re.search(r"^amount\s+250 \(2\.50 NAC\)$", paid.stdout, re.MULTILINE)
    assert mura.balance(alice["address"]) == 750
    assert mura.balance(bob["address"]) == 250


def test_issuer_mints_and_burns(mura: Mura, tmp_path: Path) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "alice.key"))["address"]
    treasury = mura.json("address", "--key", str(mura.treasury_key))["address"]
    before = mura.balance(treasury)
    minted = mura.json("mint", "--key", str(mura.treasury_key), "--to", alice, "--amount", "5NAC", "--wait")
    assert (minted["kind"], minted["body"], minted["status"]) == (
        "mint", {"asset": "NAC", "recipient": alice, "amount": 500}, "final",
    )
    burned = mura.json("burn", "--key", str(mura.treasury_key), "--amount", "300", "--wait")
    assert (burned["kind"], burned["body"]) == ("burn", {"asset": "NAC", "amount": 300})
    assert mura.balance(treasury) == before - 300 and mura.json("balance", treasury)["roles"] == ["issuer"]
    assert mura.balance(alice) == 500


def test_send_without_wait_is_submitted(mura: Mura, tmp_path: Path) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "alice.key"))["address"]
    submitted = mura.json("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", "1")
    assert submitted["status"] == "submitted" and re.fullmatch(r"0x[0-9a-f]{64}", submitted["hash"])


# --- reading the chain ----------------------------------------------------------------------------


def test_status_is_an_aligned_table(mura: Mura) -> None:
    result = mura("status")
    assert result.exit_code == 0
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.stdout.strip().splitlines())
    assert rows["chain id"] == "nishiawakura-testnet-1" and rows["address prefix"] == "tnac"
    assert (rows["default asset"], rows["assets"], rows["validators"]) == ("NAC", "JPYT, NAC", "1")
    values = [line.index(value) for line, value in zip(result.stdout.splitlines(), rows.values(), strict=False)]
    assert len(set(values)) == 1, "values start in one column"
    assert mura.json("status")["chain_id"] == "nishiawakura-testnet-1"


def test_block_and_tx_by_height_and_hash(mura: Mura, tmp_path: Path) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "alice.key"))["address"]
    final = mura.json("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", "7", "--wait")
    by_height = mura.json("block", str(final["block_height"]))
    assert by_height == mura.json("block", final["block_hash"])
    assert by_height["transactions"][final["index"]]["hash"] == final["hash"]
    table = mura("block", str(final["block_height"])).stdout
    row = rf"^{final['index']}\s+{final['hash']}\s+transfer\s+tnac1\w+\s+7 \(0\.07 NAC\)$"
    assert re.search(row, table, re.MULTILINE), table
    assert re.search(r"^time\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$", table, re.MULTILINE), table
    assert mura.json("block", "0")["proposer"] is None

    found = mura.json("tx", final["hash"])
    assert (found["block_height"], found["body"]["amount"]) == (final["block_height"], 7)
    assert re.search(r"^to\s+" + alice + "$", mura("tx", final["hash"]).stdout, re.MULTILINE)


def test_address_of_a_key_file_and_of_a_public_key(mura: Mura, tmp_path: Path) -> None:
    made = mura.json("keygen", "--out", str(tmp_path / "k.key"))
    by_file = mura.json("address", "--key", str(tmp_path / "k.key"))
    assert by_file == {"address": made["address"], "public_key": made["public_key"]}
    assert mura.json("address", made["public_key"]) == by_file
    other = mura.json("address", made["public_key"], "--prefix", "nac")
    assert other["address"].startswith("nac1")


def test_keygen_offline_with_a_prefix_and_without_a_node(mura: Mura, tmp_path: Path) -> None:
    offline = mura("--json", "keygen", "--out", str(tmp_path / "a.key"), "--prefix", "tnac", rpc=unreachable_url())
    assert offline.exit_code == 0 and json.loads(offline.stdout)["address"].startswith("tnac1")
    unknown = mura("--json", "keygen", "--out", str(tmp_path / "b.key"), rpc=unreachable_url())
    assert unknown.exit_code == 0 and json.loads(unknown.stdout)["address"] is None
    assert "address not shown" in unknown.stderr and (tmp_path / "b.key").exists()


# --- errors: one line on stderr, and the exit status ------------------------------------------------------


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port_range(1)}"


def test_unreachable_node(mura: Mura) -> None:
    assert_one_line_error(mura("status", rpc=unreachable_url()), EXIT_UNREACHABLE, r"cannot reach the node at http")
    installed = run_installed("--rpc", unreachable_url(), "balance", "tnac1x")
    assert_one_line_error(installed, EXIT_UNREACHABLE, r"connection refused")
    assert_one_line_error(mura("status", rpc="localhost:8700"), EXIT_USAGE, r"--rpc: the node's URL must look like")


def test_bad_addresses(mura: Mura, tmp_path: Path) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "a.key"))["address"]
    typo = alice[:-3] + ("q" if alice[-3] != "q" else "p") + alice[-2:]
    sent = mura("send", "--key", str(mura.treasury_key), "--to", typo, "--amount", "1")
    assert_one_line_error(sent, EXIT_USAGE, r"bad address .*checksum does not match")
    assert_one_line_error(mura("balance", "nac1" + alice[5:]), EXIT_USAGE, r"bad address .*network 'nac'")
    assert_one_line_error(mura("address", "abcd"), EXIT_USAGE, r"a public key is 64 hex digits")


def test_refused_transactions_name_the_rule(mura: Mura, tmp_path: Path) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "a.key"))["address"]
    broke = mura("send", "--key", str(tmp_path / "a.key"), "--to", alice, "--amount", "5")
    assert_one_line_error(broke, EXIT_REFUSED, r"transaction refused \(insufficient_balance\): the transfer "
                          r"of 5 \(0\.05 NAC\) exceeds the final balance of 0 \(0\.00 NAC\)$")
    minted = mura("mint", "--key", str(tmp_path / "a.key"), "--to", alice, "--amount", "5")
    assert_one_line_error(minted, EXIT_REFUSED, r"transaction refused \(not_asset_issuer\): only the issuer of NAC")


def test_missing_and_broken_key_files(mura: Mura, tmp_path: Path) -> None:
    missing = mura("send", "--key", str(tmp_path / "none.key"), "--to", "tnac1x", "--amount", "1")
    assert_one_line_error(missing, EXIT_USAGE, r"key file .*none\.key does not exist")
    (tmp_path / "broken.key").write_text("{}")
    assert_one_line_error(mura("burn", "--key", str(tmp_path / "broken.key"), "--amount", "1"), EXIT_USAGE,
                          r"not an ed25519 key file")
    mura.json("keygen", "--out", str(tmp_path / "kept.key"))
    assert_one_line_error(mura("keygen", "--out", str(tmp_path / "kept.key")), EXIT_USAGE, r"already exists")


@pytest.mark.parametrize(
    ("amount", "pattern"),
    [("12.5", r"write 12\.5NAC for whole NAC"), ("1.234NAC", r"NAC has 2 decimals"),
     ("5XYZ", r"no asset XYZ on this network \(known: JPYT, NAC\)"),
     ("0", r"at least 1 smallest unit"), ("-3", r"'-3': amounts are digits, optionally with an asset id"),
     ("1e3", r"1e3: amounts are digits, optionally with an asset id, like 1000 or 12\.50NAC \(no exponents\)"),
     (str(2**64), r"the most an amount can be is 18446744073709551615 smallest units"),
     ("184467440737095516.16NAC", r"the most an amount can be is 18446744073709551615"),
     ("9" * 5000, r"amount of 5000 characters: amounts are digits")],
    ids=["decimal-without-symbol", "too-many-decimals", "unknown-asset", "zero", "negative", "exponent", "2^64",
         "2^64-in-whole-units", "5000-digits"],
)
def test_bad_amounts(mura: Mura, tmp_path: Path, amount: str, pattern: str) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "a.key"))["address"]
    result = mura("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", amount)
    assert_one_line_error(result, EXIT_USAGE, pattern)


def test_not_found_and_malformed_ids(mura: Mura) -> None:
    assert_one_line_error(mura("block", "999999999"), EXIT_REFUSED, r"no final block 999999999; the chain's head")
    assert_one_line_error(mura("block", "lastest"), EXIT_USAGE, r"neither a height, a block hash .* nor 'latest'")
    assert_one_line_error(mura("block", "9" * 30), EXIT_USAGE, r"beyond any chain")
    assert_one_line_error(mura("tx", "0x" + "ab" * 32), EXIT_REFUSED, r"is not final: unknown to this node")
    assert_one_line_error(mura("tx", "abc"), EXIT_USAGE, r"'abc' is not a transaction hash \(64 hex digits, with or")
    assert_one_line_error(mura("tx", "0x" + "ab" * 31), EXIT_USAGE, r"not a transaction hash")


def test_usage_errors_are_one_line(mura: Mura) -> None:
    assert_one_line_error(
        mura("send", "--key", "k", "--amount", "1"), EXIT_USAGE, r"^mura send: error: missing the recipient: give it"
    )
    assert_one_line_error(mura("frobnicate"), EXIT_USAGE, r"No such command 'frobnicate'")
    assert_one_line_error(mura("address"), EXIT_USAGE, r"give either --key FILE or a public key")


# --- amounts ----------------------------------------------------------------------------------------


def test_amounts_in_smallest_units_or_whole_units_of_an_asset() -> None:
    assert parse_amount("1250", NAC) == parse_amount("12.50NAC", NAC) == parse_amount("12.5 nac", NAC) == 1250
    assert parse_amount("3NAC", NAC) == 300 and parse_amount("1000JPYT", JPYT) == 1000
    assert parse_amount("0", NAC, minimum=0) == 0
    assert format_amount(DEFAULT_TREASURY_AMOUNT, NAC) == "100000000 (1,000,000.00 NAC)"
    assert format_amount(7, {"id": "BOND", "decimals": 0}) == "7 (7 BOND)"
    for text, problem in [("12.5JPYT", "JPYT has 0 decimals"), ("5NAC", "is not in JPYT"),
                          ("0", "must be at least 1 smallest unit")]:
        with pytest.raises(AmountError, match=problem):
            parse_amount(text, JPYT)


def test_the_asset_of_an_amount() -> None:
    bond, e3 = {"id": "NISHI-2031-01", "name": "Bond", "decimals": 2}, {"id": "E3", "name": "E", "decimals": 0}
    assets = [JPYT, NAC, bond, e3]
    assert amount_asset("12.50NAC", assets)["id"] == "NAC"
    assert amount_asset("5jpyt", assets, default="NAC")["id"] == "JPYT"
    assert amount_asset("5", assets, default="NAC")["id"] == "NAC"
    assert amount_asset("5", assets, asset="jpyt", default="NAC")["id"] == "JPYT"
    assert amount_asset("1.25NISHI-2031-01", assets)["id"] == "NISHI-2031-01"
    assert amount_asset("1E3", assets)["id"] == "E3", "an asset's id is no exponent"
    cases: list[tuple[str, dict[str, str], str | None]] = [
        ("5NAC", {"asset": "JPYT"}, r"'5NAC' is in NAC, but the asset given is JPYT"),
        ("5", {}, r"name its asset, like 5JPYT or with --asset: this network has no default asset"),
        ("5", {"asset": "XYZ"}, r"no asset XYZ on this network \(known: E3, JPYT, NAC, NISHI-2031-01\)"),
        ("1e4", {"default": "NAC"}, r"1e4: amounts are digits, optionally with an asset id, like 1000 or "
         r"12\.50NAC \(no exponents\)"),
        ("12.50", {"default": "NAC"}, None),
    ]
    for text, options, problem in cases:
        asset, default = options.get("asset"), options.get("default")
        if problem is None:
            assert amount_asset(text, assets, asset=asset, default=default)["id"] == "NAC"
            continue
        with pytest.raises(AmountError, match=problem):
            amount_asset(text, assets, asset=asset, default=default)
    # An asset the node does not list at once is looked up (a network with many assets).
    later = {"id": "LATER", "name": "Later", "decimals": 1}
    assert amount_asset("2.5LATER", assets, lookup={"LATER": later}.get) == later
    with pytest.raises(AmountError, match="no asset OTHER on this network"):
        amount_asset("5OTHER", assets, lookup={"LATER": later}.get)


# --- the node and the testnet ----------------------------------------------------------------------------


def test_node_run_serves_until_terminated(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "net", validators=1)
    config = tmp_path / "net" / "nodes" / cluster.names[0] / "node.toml"
    process = subprocess.Popen([str(MURA), "node", "run", "--config", str(config), "--log-level", "warning"])
    try:
        from mura.tests.node.cluster import wait_for

        wait_for(lambda: cluster.status(0)["chain_id"] == cluster.chain_id, "the node to answer")
        process.terminate()
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_node_run_with_a_missing_config(tmp_path: Path) -> None:
    result = run_installed("node", "run", "--config", str(tmp_path / "none.toml"))
    assert result.returncode == 2 and re.fullmatch(r"mura-node: config file .* does not exist\n", result.stderr)


def test_testnet_generates_once_without_running(mura: Mura, tmp_path: Path) -> None:
    directory = tmp_path / "net"
    first = mura("testnet", "--dir", str(directory), "--validators", "2", "--no-run")
    assert first.exit_code == 0, first.output
    assert (directory / "genesis.json").exists() and len(list((directory / "nodes").iterdir())) == 2
    genesis = (directory / "genesis.json").read_bytes()
    again = mura("testnet", "--dir", str(directory), "--no-run")
    assert again.exit_code == 0 and "left every file untouched" in again.stdout
    assert (directory / "genesis.json").read_bytes() == genesis
    assert_one_line_error(mura("testnet", "--validators", "0"), EXIT_USAGE, r"--validators")
