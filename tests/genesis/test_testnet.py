"""Tests for genesis/testnet.py: the generator and its command."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import plyvel
import pytest

import mura
from mura.chain.address import decode_address, encode_address
from mura.chain.errors import InvalidGenesis
from mura.chain.keys import load_key
from mura.config import load_config
from mura.genesis import testnet
from mura.genesis.format import load_genesis, parse_genesis_time

#: 2026-11-23T00:00:00Z
GENESIS_TIME_MS = 1_795_392_000_000
FOUNDERS = ["village-office", "token-association", "regional-chain-partner", "forestry-cooperative"]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory`` with its content and modification time."""
    return {
        str(path.relative_to(directory)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_validator_names() -> None:
    assert list(testnet.validator_names(4)) == FOUNDERS
    assert list(testnet.validator_names(1)) == ["village-office"]
    assert list(testnet.validator_names(7)) == [*FOUNDERS, "partner-5", "partner-6", "partner-7"]


def test_generate_writes_keys_owner_only(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path / "net", genesis_time_ms=GENESIS_TIME_MS)
    expected = [tmp_path / "net" / "keys" / f"{name}.key" for name in [*FOUNDERS, "treasury", "bank"]]
    assert list(layout.key_paths) == expected
    for path in expected:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "net" / "keys").stat().st_mode) & 0o077 == 0


def test_generate_writes_a_genesis_that_loads(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path, genesis_time_ms=GENESIS_TIME_MS)
    genesis = load_genesis(tmp_path / "genesis.json")
    assert genesis == layout.genesis
    assert layout.created and layout.genesis_path == tmp_path / "genesis.json"
    assert genesis.chain_id == "nishiawakura-testnet-1" and genesis.address_prefix == "tnac"
    assert genesis.timestamp_ms == GENESIS_TIME_MS
    assert [v.name for v in genesis.validators] == FOUNDERS
    assert [v.peer_address for v in genesis.validators] == [f"127.0.0.1:{9700 + i}" for i in range(4)]


def test_generate_keys_match_the_genesis(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path, genesis_time_ms=GENESIS_TIME_MS)
    keys_directory = tmp_path / "keys"
    validator_keys = tuple(load_key(keys_directory / f"{name}.key").public_key for name in FOUNDERS)
    assert validator_keys == layout.genesis.validator_keys()
    treasury = load_key(keys_directory / "treasury.key").public_key
    bank = load_key(keys_directory / "bank.key").public_key
    assert layout.treasury == treasury
    assert layout.genesis.issuers == (treasury, bank)
    nac, jpyt = layout.genesis.assets
    assert (nac.terms.asset, nac.terms.decimals, nac.terms.issuer) == ("NAC", 2, treasury)
    assert (jpyt.terms.asset, jpyt.terms.decimals, jpyt.terms.issuer) == ("JPYT", 0, bank)
    assert nac.allocations == ((treasury, 100_000_000),)
    assert jpyt.allocations == ((bank, 100_000_000),)
    assert layout.genesis.default_asset == "NAC"


def test_generate_treasury_amount(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path, treasury_amount=5_000)
    nac, jpyt = layout.genesis.assets
    assert nac.allocations == ((layout.treasury, 5_000),)
    assert jpyt.allocations[0][1] == 100_000_000


def test_generate_every_key_is_fresh(tmp_path: Path) -> None:
    first = testnet.generate_testnet(tmp_path / "a")
    second = testnet.generate_testnet(tmp_path / "b")
    keys = {*first.genesis.validator_keys(), *second.genesis.validator_keys(), *first.genesis.issuers,
            *second.genesis.issuers}
    assert len(keys) == 12


def test_generate_larger_network(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path, validators=6, base_peer_port=20000, chain_id="mura-dev-2")
    assert [v.name for v in layout.genesis.validators] == [*FOUNDERS, "partner-5", "partner-6"]
    assert layout.genesis.validators[5].peer_address == "127.0.0.1:20005"
    assert layout.genesis.chain_id == "mura-dev-2"
    assert (tmp_path / "keys" / "partner-6.key").exists()


@pytest.mark.parametrize("count", [0, -1, 257])
def test_invalid_generate_validator_count(tmp_path: Path, count: int) -> None:
    with pytest.raises(testnet.TestnetError, match="1 to 256 validators"):
        testnet.generate_testnet(tmp_path, validators=count)
    assert list(tmp_path.iterdir()) == []


def test_invalid_generate_chain_id_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidGenesis, match="chain_id"):
        testnet.generate_testnet(tmp_path, chain_id="Not A Chain Id")
    assert list(tmp_path.iterdir()) == []


def test_invalid_generate_second_run_refused_and_untouched(tmp_path: Path) -> None:
    testnet.generate_testnet(tmp_path, genesis_time_ms=GENESIS_TIME_MS)
    before = snapshot(tmp_path)
    with pytest.raises(testnet.TestnetError, match=r"genesis\.json already exists"):
        testnet.generate_testnet(tmp_path, genesis_time_ms=GENESIS_TIME_MS)
    assert snapshot(tmp_path) == before


def test_generate_if_missing_leaves_everything_untouched(tmp_path: Path) -> None:
    first = testnet.generate_testnet(tmp_path, genesis_time_ms=GENESIS_TIME_MS)
    before = snapshot(tmp_path)
    second = testnet.generate_testnet(tmp_path, validators=7, if_missing=True)
    assert snapshot(tmp_path) == before
    assert not second.created and second.key_paths == ()
    assert second.genesis == first.genesis and second.treasury == first.treasury


def test_invalid_generate_refuses_to_overwrite_a_leftover_key(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    leftover = tmp_path / "keys" / "token-association.key"
    leftover.write_text("someone's key")
    with pytest.raises(testnet.TestnetError, match=r"token-association\.key"):
        testnet.generate_testnet(tmp_path)
    assert leftover.read_text() == "someone's key"
    assert sorted(path.name for path in (tmp_path / "keys").iterdir()) == ["token-association.key"]
    assert not (tmp_path / "genesis.json").exists()


# --- the command ----------------------------------------------------------------


def test_main_prints_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "testnet"
    code = testnet.main(["--out", str(out), "--validators", "4", "--genesis-time", "2026-11-23T00:00:00Z"])
    printed = capsys.readouterr()
    assert code == 0 and printed.err == ""
    treasury = load_key(out / "keys" / "treasury.key").public_key
    lines = printed.out.splitlines()
    assert f"wrote {out / 'genesis.json'}" in lines
    assert f"wrote {out / 'keys' / 'village-office.key'}" in lines
    assert "chain id: nishiawakura-testnet-1" in lines
    assert f"wrote {out / 'keys' / 'treasury.key'}" in lines and f"wrote {out / 'keys' / 'bank.key'}" in lines
    [treasury_line] = [line for line in lines if line.startswith("treasury: ")]
    assert decode_address(treasury_line.removeprefix("treasury: "), "tnac") == treasury
    bank = load_key(out / "keys" / "bank.key").public_key
    assert lines[-2:] == [
        f"asset NAC (Nishiawakura Coin): issuer {treasury_line.removeprefix('treasury: ')}",
        f"asset JPYT (JPY Token): issuer {encode_address(bank, 'tnac')}",
    ]
    assert load_genesis(out / "genesis.json").timestamp_ms == parse_genesis_time("2026-11-23T00:00:00Z")


def test_main_if_missing_says_it_left_files_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "testnet"
    assert testnet.main(["--out", str(out), "--if-missing"]) == 0
    first = capsys.readouterr().out
    before = snapshot(out)
    assert testnet.main(["--out", str(out), "--if-missing"]) == 0
    second = capsys.readouterr().out
    assert snapshot(out) == before
    assert "left every file untouched" in second and "wrote" not in second
    treasury_line = [line for line in first.splitlines() if line.startswith("treasury: ")]
    assert treasury_line and treasury_line[0] in second.splitlines()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--validators", "0"], "1 to 256 validators, got 0"),
        (["--validators", "four"], "--validators"),
        (["--genesis-time", "yesterday"], "RFC 3339"),
        (["--prefix", "TNAC"], "address prefix"),
        (["--chain-id", "Bad Id"], "chain_id"),
        (["--treasury-amount", "0"], "assets[0].allocations[0].amount: must be a positive integer, got 0"),
        (["--p2p-port", "65535"], "peer ports 65535-65538 are not all in 1-65535"),
        (["--rpc-port", "0"], "RPC ports 0-3 are not all in 1-65535"),
        (["--rpc-port", "9702"], "peer ports 9700-9703 and RPC ports 9702-9705 overlap"),
        (["--base-peer-port", "9800"], "--base-peer-port is gone (it moved the peer ports only): use --p2p-port"),
        (["--reset", "--run"], "--reset deletes the testnet; it cannot be combined with --run"),
        (["--colour", "green"], "--colour"),
    ],
)
def test_invalid_main_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    out = tmp_path / "testnet"
    assert testnet.main(["--out", str(out), *arguments]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert len(printed.err.splitlines()) == 1 and message in printed.err
    assert not out.exists()


def test_invalid_main_second_run_without_if_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert testnet.main(["--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert testnet.main(["--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "already exists" in error


def test_runs_as_a_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mura.genesis.testnet", "--out", "testnet", "--validators", "4", "--if-missing"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "treasury: tnac1" in result.stdout
    assert load_genesis(tmp_path / "testnet" / "genesis.json").chain_id == "nishiawakura-testnet-1"


# --- ports ---------------------------------------------------------------------


def listen_lines(directory: Path) -> list[str]:
    return [
        line for path in sorted((directory / "nodes").glob("*/node.toml"))
        for line in path.read_text().splitlines() if line.startswith("listen")
    ]


def test_generate_on_given_base_ports(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path, validators=2, base_peer_port=19800, base_rpc_port=18800)
    assert [v.peer_address for v in layout.genesis.validators] == ["127.0.0.1:19800", "127.0.0.1:19801"]
    config = (tmp_path / "nodes" / "token-association" / "node.toml").read_text()
    assert 'listen = "127.0.0.1:19801"' in config and 'listen = "127.0.0.1:18801"' in config
    nodes = testnet.node_addresses(layout)
    assert [node.listen for node in nodes] == [
        (("p2p.listen", "127.0.0.1", 19800), ("rpc.listen", "127.0.0.1", 18800)),
        (("p2p.listen", "127.0.0.1", 19801), ("rpc.listen", "127.0.0.1", 18801)),
    ]


def test_main_takes_rpc_and_peer_ports(tmp_path: Path) -> None:
    assert testnet.main(["--dir", str(tmp_path), "--validators", "2", "--rpc-port", "8800", "--p2p-port", "9800"]) == 0
    assert listen_lines(tmp_path) == [
        'listen = "127.0.0.1:9801"', 'listen = "127.0.0.1:8801"',  # token-association
        'listen = "127.0.0.1:9800"', 'listen = "127.0.0.1:8800"',  # village-office
    ]
    assert [v.peer_address for v in load_genesis(tmp_path / "genesis.json").validators] == [
        "127.0.0.1:9800", "127.0.0.1:9801"
    ]


def test_existing_testnet_keeps_its_ports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert testnet.main(["--out", str(tmp_path), "--validators", "2", "--rpc-port", "8800", "--p2p-port", "9800"]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    for same in ([], ["--rpc-port", "8800"], ["--p2p-port", "9800"], ["--rpc-port", "8800", "--p2p-port", "9800"]):
        assert testnet.main(["--out", str(tmp_path), "--if-missing", *same]) == 0
        assert "left every file untouched" in capsys.readouterr().out
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("ports", [["--rpc-port", "8700"], ["--p2p-port", "9700"], ["--rpc-port", "8801"]])
def test_invalid_other_ports_for_an_existing_testnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ports: list[str]
) -> None:
    assert testnet.main(["--out", str(tmp_path), "--validators", "2", "--rpc-port", "8800", "--p2p-port", "9800"]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert testnet.main(["--out", str(tmp_path), "--if-missing", *ports]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == (
        f"testnet: {tmp_path} was generated with peer ports 9800-9801 (in its genesis) and RPC ports 8800-8801, "
        "and keeps them: run it without --p2p-port and --rpc-port, or give another --dir for a new testnet "
        "(or delete this one: mura testnet --reset)\n"
    )
    assert snapshot(tmp_path) == before


# --- reset ----------------------------------------------------------------------


def test_reset_deletes_a_stopped_testnet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "testnet"
    testnet.generate_testnet(directory, validators=2)
    # A node that ran and stopped leaves its LevelDB lock files behind, unlocked.
    for path in (directory / "nodes" / "village-office" / "data", directory / "keys" / "village-office.votes"):
        plyvel.DB(str(path), create_if_missing=True).close()
    assert testnet.main(["--out", str(directory), "--reset"]) == 0
    assert capsys.readouterr().out == f"deleted {directory}\n"
    assert not directory.exists()
    assert testnet.main(["--out", str(directory), "--reset"]) == 0
    assert capsys.readouterr().out == f"{directory} does not exist; nothing to delete\n"


def test_reset_deletes_a_testnet_with_every_key_and_vote_record_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "testnet"
    testnet.generate_testnet(directory, validators=2)
    assert (directory / "keys" / "bank.key").exists() and (directory / "keys" / "treasury.key").exists()
    for name in ("village-office", "token-association"):
        plyvel.DB(str(directory / "keys" / f"{name}.votes"), create_if_missing=True).close()
    assert testnet.main(["--out", str(directory), "--reset"]) == 0
    assert capsys.readouterr().out == f"deleted {directory}\n"
    assert not directory.exists()


def test_invalid_reset_of_a_testnet_with_a_key_it_does_not_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bank's key is one the generator writes; another issuer's is not."""
    testnet.generate_testnet(tmp_path, validators=1)
    (tmp_path / "keys" / "bank-2.key").write_text("the only copy")
    assert testnet.main(["--out", str(tmp_path), "--reset"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "holds 'keys/bank-2.key'" in error
    assert (tmp_path / "keys" / "bank-2.key").read_text() == "the only copy"


def previous_format_testnet(directory: Path) -> None:
    """A testnet as the generator wrote it before genesis declared assets: a token and one set of balances."""
    testnet.generate_testnet(directory, validators=2)
    (directory / "keys" / "bank.key").unlink()
    document = json.loads((directory / "genesis.json").read_text())
    treasury = document["issuers"][0]
    document["issuers"] = [treasury]
    del document["assets"]
    document["token"] = {"name": "Nishiawakura Coin", "symbol": "NAC", "decimals": 2}
    document["allocations"] = [{"address": treasury, "amount": 100_000_000}]
    (directory / "genesis.json").write_text(json.dumps(document, indent=2))


def test_previous_format_testnet_is_refused_with_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "testnet"
    previous_format_testnet(directory)
    before = snapshot(directory)
    assert testnet.main(["--out", str(directory), "--if-missing"]) == 2
    assert capsys.readouterr().err == (
        f"testnet: {directory / 'genesis.json'} is in the format before assets (a token and its allocations), which "
        f"this version no longer reads: delete the testnet (mura testnet --dir {directory} --reset) and generate a "
        "new one\n"
    )
    assert snapshot(directory) == before
    assert testnet.main(["--out", str(directory), "--reset"]) == 0
    assert not directory.exists()
    assert testnet.main(["--out", str(directory), "--if-missing"]) == 0
    assert len(load_genesis(directory / "genesis.json").assets) == 2


@pytest.mark.parametrize("change", ["validator name", "assets too", "no allocations"])
def test_invalid_reset_of_a_previous_format_genesis_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    """Only a genesis in the previous format that is valid but for its token and allocations, naming
    the validators whose files are there, passes for a testnet."""
    directory = tmp_path / "testnet"
    previous_format_testnet(directory)
    document = json.loads((directory / "genesis.json").read_text())
    if change == "validator name":
        document["validators"][1]["name"] = "someone-else"
    elif change == "assets too":
        document["assets"] = []
    else:
        del document["allocations"]
    (directory / "genesis.json").write_text(json.dumps(document))
    assert testnet.main(["--out", str(directory), "--reset"]) == 2
    assert "refusing to delete" in capsys.readouterr().err
    assert (directory / "genesis.json").exists()


def test_invalid_reset_of_a_directory_the_generator_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    testnet.generate_testnet(tmp_path, validators=1)
    (tmp_path / "notes.txt").write_text("mine")
    assert testnet.main(["--out", str(tmp_path), "--reset"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "holds 'notes.txt', which the testnet generator does not write" in error
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "genesis.json").exists()


@pytest.mark.parametrize("layout", ["keys only", "a key the generator did not write", "a link"])
def test_invalid_reset_of_a_directory_that_only_looks_like_a_testnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    """A mistyped --dir naming a wallet's folder of keys (top-level names the generator also
    writes) is not deleted, nor is a testnet reached through a link."""
    directory = tmp_path / "wallet"
    if layout == "keys only":
        (directory / "keys").mkdir(parents=True)
    else:
        testnet.generate_testnet(directory, validators=1)
    if layout == "a link":
        (tmp_path / "link").symlink_to(directory)
        directory = tmp_path / "link"
    else:
        (directory / "keys" / "alice.key").write_text("the only copy")
    assert testnet.main(["--out", str(directory), "--reset"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "refusing to delete" in error
    assert directory.resolve().is_dir()
    if layout != "a link":
        assert (directory / "keys" / "alice.key").read_text() == "the only copy"


# --- the Makefile's targets -----------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        (["testnet"], ".venv/bin/mura testnet --dir net --validators 4"),
        (
            ["testnet", "RPC_PORT=8800", "P2P_PORT=9800"],
            ".venv/bin/mura testnet --dir net --validators 4 --rpc-port 8800 --p2p-port 9800",
        ),
        (["testnet", "OBSERVERS=1"], ".venv/bin/mura testnet --dir net --validators 4 --observers 1"),
        (["testnet-reset"], ".venv/bin/mura testnet --dir net --reset"),
    ],
)
def test_make_targets_run_the_testnet_command(arguments: list[str], command: str) -> None:
    repository = Path(mura.__file__).parent
    result = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(repository), *arguments, "TESTNET_DIR=net"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert " ".join(result.stdout.splitlines()[-1].split()) == command


# --- observers ----------------------------------------------------------------------


def test_observers_are_added_once_and_admitted_by_every_validator(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    layout = testnet.generate_testnet(directory, validators=4)
    written = testnet.add_observers(layout, 1)
    observer = load_key(directory / "keys" / "observer-1.key").public_key
    config = load_config(testnet.node_config_path(directory, "observer-1"))
    assert config["role"] == "observer"
    assert (config["rpc.listen"], config["p2p.listen"]) == ("127.0.0.1:8710", "127.0.0.1:9710")
    for validator in layout.genesis.validators:
        path = testnet.node_config_path(directory, validator.name)
        assert path in written
        assert load_config(path)["p2p.observers"] == [observer.hex()]
    before = snapshot(directory)
    assert testnet.add_observers(layout, 1) == []
    assert snapshot(directory) == before
    # The observer's files belong to the testnet: a reset deletes them.
    assert testnet.main(["--out", str(directory), "--reset"]) == 0
    assert not directory.exists()


def test_a_validator_config_admitting_other_observers_is_refused(tmp_path: Path) -> None:
    layout = testnet.generate_testnet(tmp_path / "net", validators=4)
    path = testnet.node_config_path(layout.directory, layout.genesis.validators[2].name)
    path.write_text(path.read_text().replace("[p2p]\n", f'[p2p]\nobservers = ["{"ab" * 32}"]\n'))
    with pytest.raises(testnet.TestnetError, match="admits the observers"):
        testnet.add_observers(layout, 1)
