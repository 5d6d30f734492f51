"""Safe sends against real node processes: every argument checked before anything is signed or
sent, --nonce, waits longer than the node's longest tx_wait, and exit status 4 with the hash
whenever a submitted transaction's outcome is unknown (timeout, Ctrl-C, node gone).

Most tests use the package's shared node. A transaction that stays pending is made with a nonce
beyond the sender's next one (a gap the sender never fills), from an account of its own, so no
other test's sender waits behind it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mura.chain.keys import PASSPHRASE_VARIABLE, SigningKey, load_key, save_key
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.cli.session import EXIT_OUTCOME_UNKNOWN, EXIT_REFUSED, EXIT_USAGE, Session
from mura.cli.submit import describe_drop, describe_refusal
from mura.rpc.client import RemoteError
from mura.tests.node.cluster import FAST_CONSENSUS, Cluster, wait_for

from .conftest import Mura
from .test_cli import MURA, assert_one_line_error

NAC = {"id": "NAC", "name": "Nishiawakura Coin", "decimals": 2}
OUTCOME_UNKNOWN = r"transaction (0x[0-9a-f]{64}) may have been submitted and may still become final: check with: mura"


def funded(mura: Mura, tmp_path: Path, name: str, amount: int = 1000) -> tuple[Path, str]:
    """A new key file and its address, holding ``amount`` once final."""
    key_file = tmp_path / f"{name}.key"
    address = mura.json("keygen", "--out", str(key_file))["address"]
    mura.json("send", "--key", str(mura.treasury_key), "--to", address, "--amount", str(amount), "--wait")
    return key_file, address


def account(mura: Mura, address: str) -> dict[str, object]:
    """Nonce, pending transactions and NAC balance of an account."""
    found = mura.json("balance", address)
    return {"nonce": found["nonce"], "pending": found["pending"], "next_nonce": found["next_nonce"],
            "balance": mura.balance(address)}


# --- nothing is sent when an argument is wrong ---------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "pattern"),
    [
        ("--timeout", "0", r"'0': must be a positive number of seconds"),
        ("--timeout", "-1", r"'-1': must be a positive number of seconds"),
        ("--timeout", "nan", r"'nan': must be a positive number of seconds"),
        ("--timeout", "1e400", r"must be a positive number of seconds"),
        ("--timeout", "٣", r"is not a number of seconds"),
        ("--nonce", "-1", r"is not a nonce \(a whole number from 0 to 18446744073709551615\)"),
        ("--nonce", str(2**64), r"is not a nonce"),
        ("--nonce", "1e3", r"'1e3' is not a nonce"),
        ("--amount", str(2**64), r"the most an amount can be is 18446744073709551615"),
        ("--to", "ab" * 32, r"that is a public key, not an address; its address is tnac1"),
    ],
)
def test_a_wrong_argument_sends_nothing(mura: Mura, tmp_path: Path, option: str, value: str, pattern: str) -> None:
    key_file, alice = funded(mura, tmp_path, "alice")
    before = account(mura, alice)
    arguments = {"--key": str(key_file), "--to": alice, "--amount": "1", "--timeout": "5"} | {option: value}
    flat = [item for pair in arguments.items() for item in pair]
    result = mura("send", *flat, "--wait")
    assert_one_line_error(result, EXIT_USAGE, pattern)
    after = account(mura, alice)
    assert (after["nonce"], after["pending"], after["balance"]) == (before["nonce"], 0, before["balance"])


def test_a_public_key_given_as_the_recipient_names_its_address(mura: Mura, tmp_path: Path) -> None:
    made = mura.json("keygen", "--out", str(tmp_path / "bob.key"))
    result = mura("send", "--key", str(mura.treasury_key), "--to", "0x" + made["public_key"].upper(), "--amount", "1")
    assert_one_line_error(
        result, EXIT_USAGE, rf"that is a public key, not an address; its address is {made['address']}$"
    )


# --- waiting ---------------------------------------------------------------------------------------------


def test_a_wait_longer_than_the_node_allows_in_one_call_succeeds(mura: Mura, tmp_path: Path) -> None:
    _, alice = funded(mura, tmp_path, "alice", amount=1)
    final = mura.json("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", "2", "--wait",
                      "--timeout", "3600")
    assert final["status"] == "final" and final["body"]["amount"] == 2


def test_a_timed_out_wait_prints_the_hash_and_exits_4(mura: Mura, tmp_path: Path) -> None:
    key_file, alice = funded(mura, tmp_path, "alice")
    gap = int(mura.json("balance", alice)["next_nonce"]) + 3
    result = mura("send", "--key", str(key_file), "--to", alice, "--amount", "1", "--nonce", str(gap),
                  "--wait", "--timeout", "0.5")
    assert_one_line_error(result, EXIT_OUTCOME_UNKNOWN, r"not final after 0\.5 s; " + OUTCOME_UNKNOWN)
    transaction_hash = re.search(OUTCOME_UNKNOWN, result.stderr).group(1)  # type: ignore[union-attr]
    assert f"mura --rpc {mura.url} tx {transaction_hash}" in result.stderr
    pending = mura("tx", transaction_hash)
    assert_one_line_error(pending, EXIT_REFUSED, rf"transaction {transaction_hash} is not final: pending")


# --- --nonce -------------------------------------------------------------------------------------------


def test_nonce_signs_with_the_nonce_given(mura: Mura, tmp_path: Path) -> None:
    key_file, alice = funded(mura, tmp_path, "alice")
    _, bob = funded(mura, tmp_path, "bob", amount=1)
    first = mura.json("send", "--key", str(key_file), "--to", bob, "--amount", "5", "--nonce", "0", "--wait")
    assert (first["nonce"], first["status"]) == (0, "final")
    again = mura("send", "--key", str(key_file), "--to", bob, "--amount", "5", "--nonce", "0")
    assert_one_line_error(again, EXIT_REFUSED, r"transaction refused \(nonce_too_low\)")
    assert mura.balance(alice) == 995


# --- wording of refusals and drops ------------------------------------------------------------------------


def _transfer(amount: int, nonce: int = 4) -> Transaction:
    key = SigningKey.from_private_bytes(bytes(range(32)))
    return sign_transaction(key, chain_id="test-1", nonce=nonce, body=Transfer("NAC", bytes(32), amount))


def test_an_overspend_mentions_pending_transactions_only_when_there_are_some() -> None:
    def refusal(pending_spend: int) -> RemoteError:
        data = {
            "rule": "pending_spend_exceeds_balance", "message": "...", "balance": 300, "pending_spend": pending_spend
        }
        return RemoteError("tx_submit", -32010, "Transaction refused", data)

    alone = describe_refusal(refusal(500), _transfer(500), NAC)
    assert alone == ("transaction refused (pending_spend_exceeds_balance): the transfer of 500 (5.00 NAC) exceeds "
                     "the final balance of 300 (3.00 NAC)")
    behind = describe_refusal(refusal(700), _transfer(500), NAC)
    assert behind == ("transaction refused (pending_spend_exceeds_balance): the transfer of 500 (5.00 NAC) and "
                      "200 (2.00 NAC) already pending from this account exceed the final balance of 300 (3.00 NAC)")


def test_a_dropped_transaction_says_how_to_replace_it(mura: Mura) -> None:
    transaction = _transfer(5, nonce=7)
    dropped = RemoteError("tx_wait", -32023, "Transaction dropped", {
        "transaction_hash": "0x" + transaction.hash.hex(), "rule": "supply_overflow",
        "message": "the supply would exceed its maximum"})
    line, status = describe_drop(Session(mura.url, as_json=False), dropped, transaction)
    assert status == EXIT_OUTCOME_UNKNOWN
    assert line == (f"transaction 0x{transaction.hash.hex()} was dropped by this node (supply_overflow): the supply "
                    "would exceed its maximum; it may still become final through another node (check with: mura "
                    f"--rpc {mura.url} tx 0x{transaction.hash.hex()}). Retry only with --nonce 7 (the same nonce): at "
                    "most one of them can become final")
    replaced = RemoteError("tx_wait", -32023, "Transaction dropped", {
        "transaction_hash": "0x" + transaction.hash.hex(), "rule": "replaced", "message": "replaced",
        "replaced_by": "0x" + "cd" * 32})
    line, status = describe_drop(Session(mura.url, as_json=False), replaced, transaction)
    assert status == EXIT_OUTCOME_UNKNOWN
    assert line.endswith(f"at most one of them can: check with: mura --rpc {mura.url} tx 0x" + "cd" * 32)
    used = RemoteError("tx_wait", -32023, "Transaction dropped", {
        "transaction_hash": "0x" + transaction.hash.hex(), "rule": "nonce_used", "message": "nonce 7 used"})
    assert describe_drop(Session(mura.url, as_json=False), used, transaction)[1] == EXIT_REFUSED


def test_a_drop_while_waiting_is_outcome_unknown(mura: Mura, tmp_path: Path) -> None:
    """Dropped is this node's view: the replaced version may still be final through a validator that
    proposed it first (README, Retrying safely), so a script must not read the drop as "not sent"."""
    process, alice = _pending_send(mura, tmp_path)
    replaced = mura("send", "--key", str(tmp_path / "alice.key"), "--to", alice, "--amount", "2", "--nonce",
                    str(int(mura.json("balance", alice)["next_nonce"]) + 2))
    assert replaced.exit_code == 0, replaced.output
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == EXIT_OUTCOME_UNKNOWN, stderr
    assert re.fullmatch(r"mura: error: transaction 0x[0-9a-f]{64} was dropped by this node \(replaced\): .* it may "
                        r"still become final .*\n", stderr), stderr


# --- a node of its own: short tx_wait ceiling, encrypted validator key --------------------------------------


@pytest.fixture(scope="module")
def short_wait_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Mura]]:
    """One validator whose key file is encrypted, whose tx_wait waits at most 1 s per call."""
    cluster = Cluster(tmp_path_factory.mktemp("short-wait") / "testnet", validators=1)
    key_file = cluster.directory / "keys" / f"{cluster.names[0]}.key"
    key = load_key(key_file)
    key_file.unlink()
    save_key(key_file, key, passphrase="correct horse")
    config = cluster.directory / "nodes" / cluster.names[0] / "node.toml"
    command = [sys.executable, "-m", "mura.node", "--config", str(config), *FAST_CONSENSUS,
               "--rpc-max-wait-seconds", "1"]
    without = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != PASSPHRASE_VARIABLE})
    assert without.returncode == 2
    assert re.search(rf"^mura-node: key file .*\.key is encrypted: set {PASSPHRASE_VARIABLE} to its passphrase$",
                     without.stderr, re.MULTILINE), without.stderr
    with open(config.parent / "node.log", "ab") as log:
        cluster.processes[0] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                env={**os.environ, PASSPHRASE_VARIABLE: "correct horse"})
    try:
        wait_for(lambda: cluster.is_ours(0) and cluster.status(0)["height"] >= 1, "the node to make a block")
        keys = cluster.directory / "keys"
        yield cluster, Mura(f"http://127.0.0.1:{cluster.rpc_ports[0]}", keys / "treasury.key", keys / "bank.key")
    finally:
        cluster.close()


def test_a_node_runs_with_an_encrypted_key_and_waits_split_into_calls(short_wait_node: tuple[Cluster, Mura],
                                                                        tmp_path: Path) -> None:
    _cluster, mura = short_wait_node
    key_file, alice = funded(mura, tmp_path, "alice")
    gap = int(mura.json("balance", alice)["next_nonce"]) + 2
    result = mura("send", "--key", str(key_file), "--to", alice, "--amount", "1", "--nonce", str(gap),
                  "--wait", "--timeout", "2.5")
    # One tx_wait call of 2.5 s is invalid on this node (at most 1 s): three calls wait instead.
    assert_one_line_error(result, EXIT_OUTCOME_UNKNOWN, r"^mura: error: not final after 2\.5 s; " + OUTCOME_UNKNOWN)


def _pending_send(mura: Mura, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    """The installed ``mura send --wait`` of a transaction that stays pending, once it is pending."""
    key_file, alice = funded(mura, tmp_path, "alice")
    gap = int(mura.json("balance", alice)["next_nonce"]) + 2
    process = subprocess.Popen(
        [str(MURA), "--rpc", mura.url, "send", "--key", str(key_file), "--to", alice, "--amount", "1", "--nonce",
         str(gap), "--wait", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell runs background jobs with SIGINT ignored, and children inherit that: restore it, so
        # that Ctrl-C reaches the command as it would in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for(lambda: mura.json("balance", alice)["pending"] == 1, "the transaction to be pending")
    return process, alice


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interruption_after_submission_prints_the_hash(
    short_wait_node: tuple[Cluster, Mura], tmp_path: Path, signal_number: signal.Signals
) -> None:
    """Ctrl-C at a terminal, or SIGTERM from ``timeout 30 mura send --wait`` in a script."""
    _, mura = short_wait_node
    process, _ = _pending_send(mura, tmp_path)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == EXIT_OUTCOME_UNKNOWN, stderr
    assert re.fullmatch(r"mura: error: interrupted; " + OUTCOME_UNKNOWN + r" .*\n", stderr), stderr


def test_the_node_gone_after_submission_prints_the_hash(short_wait_node: tuple[Cluster, Mura], tmp_path: Path) -> None:
    cluster, mura = short_wait_node
    process, _ = _pending_send(mura, tmp_path)
    cluster.kill(0)  # the last test of the module: the node stays down
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == EXIT_OUTCOME_UNKNOWN, stderr
    assert re.fullmatch(r"mura: error: cannot reach the node at .*; " + OUTCOME_UNKNOWN + r" .*\n", stderr), stderr
