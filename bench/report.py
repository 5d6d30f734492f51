"""The network benchmark's results as an aligned table, next to the targets of issue 6."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Targets from issue 6, for the table's last column.
TARGET_TX_PER_SECOND_4 = 2_000
TARGET_7_OVER_4 = 0.60
TARGET_P50_SECONDS = 0.5
TARGET_P99_SECONDS = 1.5
TARGET_CATCH_UP_TX_PER_SECOND = 20_000
TARGET_RSS_MB = 200
TARGET_RSS_TRANSACTIONS = 1_000_000


def _number(value: float, unit: str = "", digits: int = 0) -> str:
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


def _memory_values(memory: dict[str, dict[str, float]], field: str) -> str:
    values = [figures[field] for figures in memory.values()]
    return " / ".join(f"{value:.0f}" for value in values) + " MB"


def _max_load_rows(network: dict[str, Any], main_rate: float | None) -> Iterator[tuple[str, str, str]]:
    count = network["validators"]
    load = network["max_load"]
    if count == 4:
        target = f">= {TARGET_TX_PER_SECOND_4:,}"
    elif main_rate:
        target = f">= {TARGET_7_OVER_4:.0%} of main ({TARGET_7_OVER_4 * main_rate:,.0f})"
    else:
        target = ""
    yield f"verification ceiling, {count} validators", _number(network["ceiling_tx_per_second"], "tx/s"), ""
    yield f"max load, {count} validators: final tx/s", _number(load["final_tx_per_second"], "tx/s"), target
    yield "  achieved / ceiling", f"{load['achieved_over_ceiling']:.1%}", ""
    span = f"{load['window_transactions']:,} tx, {load['window_blocks']} blocks, {load['window_seconds']:.1f} s"
    if load["window_kind"] == "under load":
        yield "  window (under load)", f"{span}, after {load['warmup_transactions']:,} warm-up", ""
    else:
        yield "  window (whole phase)", span, "too few blocks under load for a window"
    yield "  offered (load process)", _number(load["offered_tx_per_second"], "tx/s"), ""
    yield "  blocks / largest / view changes", (
        f"{load['blocks']} / {load['largest_block']:,} / {load['view_changes']}"
    ), ""
    yield "  CPU per tx per validator / load process", (
        f"{load['validator_cpu_ms_per_transaction']:.3f} ms / {load['load_process_cpu_seconds']:.1f} s"
    ), f"cores busy {load['machine_busy_share']:.0%} (bench processes only)"


def _mixed_rows(network: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """The max load in three assets, next to the plain one."""
    mixed = network.get("mixed_load")
    if not mixed:
        return
    plain = network["max_load"]["final_tx_per_second"]
    share = f"{mixed['final_tx_per_second'] / plain:.0%} of the plain load" if plain else ""
    yield (
        f"max load, {network['validators']} validators, mixed: final tx/s",
        _number(mixed["final_tx_per_second"], "tx/s"),
        share,
    )
    yield "  assets in turn", " / ".join(mixed["assets"]), f"{mixed['assets'][-1]} restricted, holders approved"
    span = f"{mixed['window_transactions']:,} tx, {mixed['window_blocks']} blocks, {mixed['window_seconds']:.1f} s"
    yield f"  window ({mixed['window_kind']})", span, f"after {mixed['setup_transactions']:,} set-up transactions"
    yield "  CPU per tx per validator / view changes", (
        f"{mixed['validator_cpu_ms_per_transaction']:.3f} ms / {mixed['view_changes']}"
    ), ""


def _main_rows(network: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    latency = network.get("latency")
    if latency:
        yield (
            f"finality at {latency['offered_tx_per_second_asked']:,.0f} tx/s: p50 / p95 / p99",
            f"{latency['p50_seconds']:.3f} / {latency['p95_seconds']:.3f} / {latency['p99_seconds']:.3f} s",
            f"p50 <= {TARGET_P50_SECONDS}, p99 <= {TARGET_P99_SECONDS}",
        )
        yield "  offered / max / polling", (
            f"{latency['offered_tx_per_second']:,.0f} tx/s / {latency['max_seconds']:.3f} s / "
            f"{latency['polling_interval_seconds'] * 1000:.0f} ms"
        ), ""
    catch_up = network.get("catch_up")
    if catch_up:
        yield (
            f"catch-up of a wiped validator, {catch_up['transactions']:,} tx",
            _number(catch_up["tx_per_second"], "tx/s"),
            f">= {TARGET_CATCH_UP_TX_PER_SECOND:,}",
        )
        yield "  seconds / startup", f"{catch_up['seconds']:.1f} s / {catch_up['startup_seconds']:.1f} s", ""
    queries = network.get("balance_queries")
    if queries:
        yield (
            f"account_getBalance, {queries['clients']} clients",
            _number(queries["queries_per_second"], "q/s"),
            f"p50 {queries['latency_p50_ms']:.1f} ms, errors {queries['errors']}",
        )
    memory = network.get("memory_before_catch_up")
    if memory:
        yield "peak RSS per validator (before catch-up)", _memory_values(memory, "peak_rss_mb"), ""
    soak = network.get("soak")
    final = network.get("final_transactions")
    if network.get("memory_after_run"):
        target = f"<= {TARGET_RSS_MB} after {TARGET_RSS_TRANSACTIONS:,}"
        reached = "" if soak is None or soak["reached_target"] else " (target count not reached)"
        yield (
            f"RSS after {final or 0:,} final tx{reached}",
            _memory_values(network["memory_after_run"], "rss_mb"),
            target,
        )
        yield "peak RSS per validator (whole run)", _memory_values(network["memory_after_run"], "peak_rss_mb"), ""


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    verification = results.get("verification")
    if verification:
        rows.append(("Ed25519 verifications/s, one thread", _number(verification["ed25519_per_second_one_thread"]), ""))
        rows.append(
            (f"  on all {verification['cores']} cores", _number(verification["ed25519_per_second_all_cores"]), "")
        )
    networks = [network for network in results.get("networks", []) if "max_load" in network]
    main_rate = networks[0]["max_load"]["final_tx_per_second"] if networks else None
    for position, network in enumerate(networks):
        rows += _max_load_rows(network, main_rate if position else None)
        if position == 0:
            rows += _mixed_rows(network)
            rows += _main_rows(network)
    refused: dict[str, int] = {}
    for network in results.get("networks", []):
        for rule, count in network.get("refused", {}).items():
            refused[rule] = refused.get(rule, 0) + count
    detail = ", ".join(f"{rule}: {count}" for rule, count in sorted(refused.items()))
    rows.append(("refused transactions", f"{sum(refused.values()):,}" + (f" ({detail})" if detail else ""), "0"))
    return rows


def format_table(results: dict[str, Any]) -> str:
    """The heading and the aligned rows: figure, value, target."""
    machine = results.get("machine", {})
    heading = (
        f"Mura network benchmark ({results.get('mode')}), {results.get('date')}, {machine.get('cores')} cores, "
        f"Python {machine.get('python')}"
    )
    rows = [("figure", "value", "target"), *table_rows(results)]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = [heading, ""]
    for figure, value, target in rows:
        lines.append(f"{figure:<{widths[0]}}  {value:<{widths[1]}}  {target}".rstrip())
    if "elapsed_seconds" in results:
        lines.append(f"\n{results['elapsed_seconds']:.0f} s in all")
    return "\n".join(lines)
