"""The testnet launcher with real node processes: a second testnet on the ports of a running
one, a node that cannot start, and a reset while the testnet runs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mura.bench.ports import free_port_range
from mura.genesis import testnet
from mura.holders import lock_holder

pytestmark = pytest.mark.processes

MURA = Path(sys.executable).parent / "mura"
VALIDATORS = ("village-office", "token-association")


def generate(directory: Path, *, rpc_port: int, p2p_port: int) -> None:
    """A 2-validator testnet whose nodes make empty blocks quickly (they never wait on one here)."""
    testnet.generate_testnet(directory, validators=2, base_rpc_port=rpc_port, base_peer_port=p2p_port)
    for name in VALIDATORS:
        config = testnet.node_config_path(directory, name)
        config.write_text(config.read_text() + "\n[consensus]\nempty_block_interval_ms = 200\n")


def mura(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MURA), *arguments], capture_output=True, text=True, timeout=120)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int, int, subprocess.Popen[bytes]]]:
    """A testnet run by ``mura testnet`` until the test ends: (directory, RPC port, peer port, launcher)."""
    from mura.tests.node.cluster import wait_for

    base = free_port_range(4)
    directory = tmp_path / "first"
    generate(directory, rpc_port=base, p2p_port=base + 2)
    with open(tmp_path / "first.log", "wb") as log:
        launcher = subprocess.Popen(
            [str(MURA), "testnet", "--dir", str(directory)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: healthy(base) and healthy(base + 1), "both nodes to serve JSON-RPC")
        yield directory, base, base + 2, launcher
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=60)


def test_second_testnet_on_taken_ports_starts_nothing_and_names_the_holders(
    running: tuple[Path, int, int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    first, rpc_port, p2p_port, _ = running
    second = tmp_path / "second"
    result = mura("testnet", "--dir", str(second), "--validators", "2",
                  "--rpc-port", str(rpc_port), "--p2p-port", str(p2p_port))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and "Traceback" not in result.stderr + result.stdout, result.stderr
    for index, (name, line) in enumerate(zip(VALIDATORS, lines, strict=False)):
        holder = lock_holder(testnet.node_config_path(first, name).parent / "data" / "LOCK")
        assert holder is not None
        # The launcher runs nodes with its own interpreter: python or python3, as the venv's scripts name it.
        assert re.match(
            rf"testnet: {name}: p2p\.listen 127\.0\.0\.1:{p2p_port + index} is in use by process {holder.pid} "
            r"\(python[0-9.]* -m mura\.node --config ",
            line,
        ), line
    assert lines[2].startswith("testnet: started no node")
    assert not list(second.glob("nodes/*/data"))


def test_invalid_run_or_reset_while_the_testnet_runs(
    running: tuple[Path, int, int, subprocess.Popen[bytes]]
) -> None:
    first, _, _, launcher = running
    for arguments in (["testnet", "--dir", str(first)], ["testnet", "--dir", str(first), "--reset"]):
        result = mura(*arguments)
        assert result.returncode == 2
        [line] = result.stderr.splitlines()
        assert line.startswith(f"testnet: the testnet in {first} is running: ")
        assert "holds" in line and "/data/LOCK as process " in line and "and 1 more of its nodes run" in line
    assert (first / "keys" / "village-office.key").exists() and (first / "genesis.json").exists()
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=60) == 0
    result = mura("testnet", "--dir", str(first), "--reset")
    assert (result.returncode, result.stdout) == (0, f"deleted {first}\n")
    assert not first.exists()


def test_invalid_vote_record_in_use_alone_blocks_a_reset(tmp_path: Path) -> None:
    """A node whose data directory was moved elsewhere still holds its vote record's lock."""
    directory = tmp_path / "net"
    generate(directory, rpc_port=8700, p2p_port=9700)
    votes = directory / "keys" / "token-association.votes"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, plyvel; database = plyvel.DB(sys.argv[1], create_if_missing=True); "
         "print('open', flush=True); sys.stdin.read()", str(votes)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        result = mura("testnet", "--dir", str(directory), "--reset")
        assert result.returncode == 2
        [line] = result.stderr.splitlines()
        assert line.startswith(
            f"testnet: the testnet in {directory} is running: token-association holds {votes / 'LOCK'} as process "
            f"{holder.pid} ({Path(sys.executable).name} -c import sys, plyvel;"
        ), line
        assert line.endswith("); stop it first (Ctrl-C where it runs), then reset")
        assert votes.exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=20)


def test_a_node_that_cannot_start_stops_the_launch(tmp_path: Path) -> None:
    base = free_port_range(4)
    directory = tmp_path / "net"
    generate(directory, rpc_port=base, p2p_port=base + 2)
    broken = testnet.node_config_path(directory, "token-association")
    broken.write_text(broken.read_text().replace("[rpc]\n", '[rpc]\ncors_origins = ["wallet.example"]\n'))
    result = subprocess.run(
        [sys.executable, "-m", "mura.genesis.testnet", "--out", str(directory), "--if-missing", "--run"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "testnet: token-association could not start; stopped the 1 other node\n"
    [refusal] = [line for line in result.stdout.splitlines() if line.startswith("token-association |")]
    assert refusal == (
        "token-association | mura-node: setting rpc.cors_origins: 'wallet.example' is not an origin such as "
        "https://wallet.example or http://localhost:3000 (or *)"
    )
    assert "Traceback" not in result.stdout
    assert testnet.running_nodes(directory) == []
