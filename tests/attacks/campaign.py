"""The attack campaign: ``python -m mura.tests.attacks.campaign [--attack NAME ...] [--scale K] [--json FILE]``.

For each attack, a fresh 4-validator testnet of real node processes (validators
0-2 honest, validator 3's key held by the attacker and its node not running),
the attack, and one table row of what it cost the honest nodes (see
``harness``). ``--scale 1`` is a quick run of a few seconds per attack,
``--scale 10`` the strength of the reported figures. Every attack has a time
bound; every process the campaign starts is stopped when it ends, however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mura.bench.rpc import Rpc
from mura.tests.attacks import keyless_attacks, rpc_attacks, validator_attacks
from mura.tests.attacks.harness import FULL_SCALE, Attack, Context, Scale
from mura.tests.attacks.testnet import start_cluster


@dataclass(frozen=True, slots=True)
class Entry:
    """One attack the campaign knows."""

    run: Attack
    #: Longest the attack may take at scale 1 and at full scale (set-up and settling included).
    bound_quick: float
    bound_full: float
    summary: str


async def _baseline(context: Context) -> None:
    """No attack: what the figures look like on a quiet chain."""
    async with context.window():
        await asyncio.sleep(context.scale.grow(3, 15))


ATTACKS: dict[str, Entry] = {
    "baseline": Entry(_baseline, 60, 150, "no attack, for comparison"),
    "new_view_flood": Entry(validator_attacks.new_view_flood, 120, 400, "8 MB NEW-VIEWs of 72,000 transactions"),
    "block_request_flood": Entry(validator_attacks.block_request_flood, 200, 900, "40 BlockRequests/s on full blocks"),
    "refused_submissions": Entry(rpc_attacks.refused_submissions, 120, 600, "tx_submit from zero-balance keys"),
    "refused_gossip": Entry(validator_attacks.refused_gossip, 90, 250, "gossip of refused and forged transactions"),
    "pre_handshake_frames": Entry(
        keyless_attacks.pre_handshake_frames, 90, 200, "16 MB frames before the handshake, from 4 addresses"
    ),
    "handshake_slots": Entry(keyless_attacks.handshake_slots, 90, 250, "idle websockets in the handshake slots"),
    "slow_headers": Entry(keyless_attacks.slow_headers, 90, 250, "request heads a byte every 2 s"),
    "content_encoding": Entry(rpc_attacks.content_encoding, 60, 150, "RPC bodies with Content-Encoding"),
    "garbage_connections": Entry(keyless_attacks.garbage_connections, 90, 300, "failed handshakes, dropped upgrades"),
    "equivocation_log": Entry(validator_attacks.equivocation_log, 90, 200, "conflicting votes in every view"),
    "far_future_votes": Entry(validator_attacks.far_future_votes, 90, 200, "votes for height + 1,000,000"),
    "bad_signature_votes": Entry(validator_attacks.bad_signature_votes, 90, 200, "votes that do not verify"),
    "relay_impersonation": Entry(
        keyless_attacks.relay_impersonation_attack, 90, 400, "keyless relay of handshakes, forwarded or re-keyed"
    ),
}


async def run_attack(name: str, scale: Scale, workdir: Path, node_arguments: Sequence[str]) -> dict[str, Any]:
    """One attack on a fresh testnet; its row of figures (with ``error`` if it failed)."""
    entry = ATTACKS[name]
    bound = scale.grow(entry.bound_quick, entry.bound_full)
    started = time.monotonic()
    row: dict[str, Any] = {"attack": name, "summary": entry.summary, "scale": scale.k, "bound_s": round(bound)}
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    # In this thread: a node dies with the thread that started it (see testnet.die_with_parent).
    cluster = start_cluster(directory, node_arguments=node_arguments)
    context: Context | None = None
    try:
        async with Rpc(timeout_seconds=10, connections=32) as rpc:
            context = Context(cluster, rpc, scale, directory)
            try:
                async with asyncio.timeout(bound):
                    await entry.run(context)
            except TimeoutError:
                row["error"] = f"did not finish within its bound of {bound:.0f} s"
            except Exception as error:
                row["error"] = f"{type(error).__name__}: {error}"
                row["traceback"] = traceback.format_exc(limit=6)
            finally:
                context.kill_observer()
                await context.close_links()
            row.update(context.measured)
            row["figures"] = context.figures
    finally:
        cluster.close()
    row["total_s"] = round(time.monotonic() - started, 1)
    return row


# --- the table ------------------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{_short(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_short(item) for item in value) + "]"
    return str(value)


#: Figures left out of the table (still in the JSON): long lists and details.
_DETAIL = {"attempts", "by_encoding", "endings", "peers_over_time", "rss_mb_at_each_100k", "load_refused", "rules"}


def _most(values: dict[str, float | None]) -> str:
    """The largest of the targets' values (they are alike but for the one an attack singles out)."""
    present = [value for value in values.values() if value is not None]
    return f"{max(present):g}" if present else "-"


def format_row(row: dict[str, Any]) -> list[str]:
    if "stall_s" not in row:
        return [row["attack"], "-", "-", "-", "-", "-", "-", "-", "-", row.get("error", "")[:120]]
    rss = f"{_most(row['rss_before_mb'])}->{_most(row['rss_after_mb'])}({_most(row['rss_peak_mb'])})"
    cut_honest = (len(row["honest_bans"]) and f"{len(row['honest_bans'])} bans") or ""
    disconnects = sum(row["honest_disconnects"].values())
    cut_honest = ", ".join(part for part in (cut_honest, (disconnects and f"{disconnects} disc") or "") if part) or "no"
    if row["attacker_banned"] is None:
        attacker = "n/a"
    else:
        attacker = ("banned" if row["attacker_banned"] else "") or ("cut" if row["attacker_disconnected"] else "no")
    stall = f"{row['stall_s']:g}" + ("" if row["recovered"] else "+")
    specific = " ".join(f"{key}={_short(value)}" for key, value in row.get("figures", {}).items() if key not in _DETAIL)
    if "error" in row:
        specific = f"ERROR {row['error'][:80]} | " + specific
    return [
        row["attack"],
        stall,
        f"{row['rpc_max_s']:g}",
        rss,
        _short(sum(row["cpu_s"].values())),
        f"{row['log_lines']}({row['tracebacks']})",
        cut_honest,
        attacker,
        "/".join(f"{value:g}" for value in row["load_average"]),
        specific,
    ]


HEADERS = ["attack", "stall s", "rpc max s", "RSS MB bef->aft(peak)", "cpu s", "log lines(tb)", "honest cut",
           "attacker cut", "load 1/5/15", "attack figures"]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    cells = [HEADERS] + [format_row(row) for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS) - 1)]
    lines = []
    for line in cells:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    return "\n".join(lines)


# --- the command line -----------------------------------------------------------------------------


def _names(values: Sequence[str]) -> list[str]:
    names = [name for value in values for name in value.replace(",", " ").split()]
    unknown = [name for name in names if name not in ATTACKS]
    if unknown:
        raise SystemExit(f"unknown attack {unknown[0]!r}; known: {', '.join(ATTACKS)}")
    return names or list(ATTACKS)


async def campaign(names: Sequence[str], scale: Scale, workdir: Path, node_arguments: Sequence[str],
                   json_path: Path | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "scale": scale.k,
        "full_scale": FULL_SCALE,
        "node_arguments": list(node_arguments),
        "rows": rows,
    }
    for name in names:
        print(f"--- {name} (scale {scale.k:g}) ...", file=sys.stderr, flush=True)
        row = await run_attack(name, scale, workdir, node_arguments)
        rows.append(row)
        print(format_table([row]).splitlines()[1], file=sys.stderr, flush=True)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(document, indent=1, default=str))  # noqa: ASYNC240 - once per attack
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mura.tests.attacks.campaign", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", action="append", default=[], help="attack name(s), comma-separated; default all")
    parser.add_argument("--scale", type=float, default=1.0, help=f"1 quick, {FULL_SCALE} full strength")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--node-arg", action="append", default=[],
        help="extra argument for every node, e.g. --node-arg=--log-level=debug",
    )
    parser.add_argument("--keep", action="store_true", help="keep the testnet directories (logs) after the run")
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    options = parser.parse_args(argv)
    if options.list:
        for name, entry in ATTACKS.items():
            print(f"{name:22} {entry.summary}")
        return 0
    names = _names(options.attack)
    workdir = Path(tempfile.mkdtemp(prefix="mura-attacks-"))
    started = time.monotonic()
    # Stop as on Ctrl-C, through every finally, also when started with SIGINT ignored (in the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        rows = asyncio.run(campaign(names, Scale(options.scale), workdir, options.node_arg, options.json))
    except KeyboardInterrupt:
        print("interrupted; every node stopped", file=sys.stderr)
        return 130
    finally:
        if options.keep:
            print(f"testnets kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(format_table(rows))
    print(f"\n{len(rows)} attacks at scale {options.scale:g} in {time.monotonic() - started:.0f} s; "
          "stall and rpc: the honest nodes; RSS (the largest), cpu (summed) and logs: the attack's targets; "
          "'+' after a stall: the chain had not moved again when the window closed")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
