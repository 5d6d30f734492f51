"""Tests for genesis/testnet.py: the generator and its command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mura.chain.address import decode_address
from mura.chain.errors import InvalidGenesis
from mura.chain.keys import load_key
from mura.genesis import testnet
from mura.genesis.format import Allocation, load_genesis, parse_genesis_time

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
    expected = [tmp_path / "net" / "keys" / f"{name}.key" for name in [*FOUNDERS, "treasury"]]
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
    assert layout.treasury == treasury
    assert layout.genesis.issuers == (treasury,)
    assert layout.genesis.allocations == (Allocation(treasury, 100_000_000),)


def test_generate_every_key_is_fresh(tmp_path: Path) -> None:
    first = testnet.generate_testnet(tmp_path / "a")
    second = testnet.generate_testnet(tmp_path / "b")
    keys = {*first.genesis.validator_keys(), *second.genesis.validator_keys(), first.treasury, second.treasury}
    assert len(keys) == 10


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
    [treasury_line] = [line for line in lines if line.startswith("treasury: ")]
    assert decode_address(treasury_line.removeprefix("treasury: "), "tnac") == treasury
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
        (["--treasury-amount", "0"], "allocations[0].amount"),
        (["--base-peer-port", "65535"], "peer ports"),
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
