"""The network benchmark at a tiny size: every figure is there and makes sense.

This checks the harness, not the node's speed: the run is far too small for
its rates to mean anything, but every transaction it submits must be counted,
final and timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from mura.bench.phases import sustained_window
from mura.bench.watcher import SeenBlock

pytestmark = pytest.mark.processes

TRANSACTIONS = 300
MIXED_TRANSACTIONS = 300
ACCOUNTS = 40
HUBS = -(-ACCOUNTS // 60)
RATE = 200
LATENCY_SECONDS = 1.0


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("bench") / "network.json"
    command = [
        sys.executable, "-m", "mura.bench.network", "--quick", "--skip-7",
        "--transactions", str(TRANSACTIONS), "--mixed-transactions", str(MIXED_TRANSACTIONS), "--warmup", "50",
        "--accounts", str(ACCOUNTS),
        "--rate", str(RATE), "--latency-seconds", str(LATENCY_SECONDS), "--query-seconds", "0.5",
        "--verify-seconds", "0.2", "--stall-seconds", "20", "--json", str(output),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr + finished.stdout
    assert "account_getBalance" in finished.stdout and "mixed: final tx/s" in finished.stdout
    document: dict[str, Any] = json.loads(output.read_text())
    return document


def test_report_names_the_machine_and_options(results: dict[str, Any]) -> None:
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    assert results["options"]["transactions"] == TRANSACTIONS and results["mode"] == "quick"
    assert results["date"] and "error" not in results
    assert results["verification"]["ed25519_per_second_one_thread"] > 0


def test_every_submitted_transaction_is_final_and_none_refused(results: dict[str, Any]) -> None:
    (network,) = results["networks"]
    latency_count = int(RATE * LATENCY_SECONDS)
    assert network["max_load"]["accepted"] == TRANSACTIONS and network["max_load"]["refused"] == 0
    assert network["mixed_load"]["accepted"] == MIXED_TRANSACTIONS and network["mixed_load"]["refused"] == 0
    assert network["latency"]["transactions"] == latency_count and network["latency"]["refused"] == 0
    # The mixed load's set-up: the restricted asset's issue, then yen, approvals and the asset for each.
    setup = network["mixed_load"]["setup_transactions"]
    assert setup == 1 + 3 * (HUBS + ACCOUNTS)
    funding = HUBS + ACCOUNTS
    assert network["final_transactions"] == funding + TRANSACTIONS + setup + MIXED_TRANSACTIONS + latency_count
    assert network["refused"] == {}


def test_rates_and_latencies_are_positive_and_ordered(results: dict[str, Any]) -> None:
    network = results["networks"][0]
    assert network["max_load"]["final_tx_per_second"] > 0 and network["ceiling_tx_per_second"] > 0
    assert network["mixed_load"]["final_tx_per_second"] > 0
    assert network["mixed_load"]["assets"] == ["NAC", "JPYT", "BENCH-BOND"]
    latency = network["latency"]
    assert 0 < latency["p50_seconds"] <= latency["p95_seconds"] <= latency["p99_seconds"] <= latency["max_seconds"]
    assert latency["polling_interval_seconds"] == pytest.approx(0.02)
    catch_up = network["catch_up"]
    assert catch_up["transactions"] == network["final_transactions"] and catch_up["tx_per_second"] > 0
    queries = network["balance_queries"]
    assert queries["queries"] > 0 and queries["errors"] == 0


def test_memory_is_read_for_every_validator(results: dict[str, Any]) -> None:
    network = results["networks"][0]
    for memory in (network["memory_before_catch_up"], network["memory_after_run"]):
        assert len(memory) == network["validators"]
        assert all(0 < figures["rss_mb"] <= figures["peak_rss_mb"] for figures in memory.values())


def test_the_window_stops_at_the_end_of_the_load() -> None:
    blocks = [SeenBlock(height, float(height), 100) for height in range(1, 11)]
    window = sustained_window(blocks, warmup=200, min_window=0, load_finished=6.5)
    assert window is not None and (window.transactions, window.seconds, window.blocks) == (400, 4.0, 4)
    assert sustained_window(blocks, warmup=200, min_window=500, load_finished=6.5) is None
    assert sustained_window(blocks[:1], warmup=50, min_window=0, load_finished=9.0) is None
