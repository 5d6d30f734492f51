"""What happened around each fault of a kept campaign run, from the nodes' logs:
``python -m mura.tests.chaos.timeline DIR [--fault N]``.

For each fault in ``DIR/faults.jsonl`` it merges, in time order and relative
to the moment the fault was applied, every node's log lines (view changes,
links that drop and come back, dial failures, warnings), the proxy's
connection events, and the final blocks that ended a gap of a second or more
on a node (the ordinary steady stream is left out). That is usually enough to
tell which mechanism held the chain: a view timer, a link that was not
redialed, a node that never got the proposal.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A gap between a node's final blocks shown as a line of its own.
GAP_SECONDS = 1.0
#: Seconds shown before a fault's start and after its recovery.
MARGIN_SECONDS = 2.0
#: Lines about links coming and going, which ``--no-links`` leaves out.
_LINK_LINE = re.compile(r"^(connected to peer|disconnected from peer|accepted \d|reset \d|refused \d|peers \d)")

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+)\s+([\w.]+): (.*)$")
_FINAL = re.compile(r"final block (\d+): (\d+) transactions, view (\d+), (\d+) ms after its proposal")


@dataclass(frozen=True, slots=True, order=True)
class Event:
    """One line of the merged timeline."""

    moment: float
    source: str
    text: str


def parse_node_log(path: Path, name: str) -> Iterator[Event]:
    previous_final: float | None = None
    for line in path.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        stamp, millis, level, logger, message = match.groups()
        moment = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
        final = _FINAL.match(message)
        if final is not None:
            gap = None if previous_final is None else moment - previous_final
            previous_final = moment
            if gap is None or gap < GAP_SECONDS:
                continue
            height, count, view, latency = final.groups()
            message = f"final {height} after a {gap:.1f} s gap (view {view}, {count} tx, {latency} ms from proposal)"
        elif level == "INFO" and logger.endswith("p2p.network") and message.startswith("p2p listening"):
            continue
        yield Event(moment, name, f"{level.lower() + ' ' if level != 'INFO' else ''}{message}")


def parse_proxy_events(path: Path) -> Iterator[Event]:
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("rule "):
            continue
        yield Event(float(stamp), "proxy", text)


def parse_observer(path: Path) -> Iterator[Event]:
    """Views and peer counts as the campaign polled them (the node logs no view change)."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        node = json.loads(line)
        label = f"n{node['node']}"
        for series, name in (("views", "view"), ("peers", "peers")):
            previous = None
            for moment, value in node[series]:
                if previous is not None:
                    yield Event(moment, label, f"{name} {previous} -> {value} (polled)")
                previous = value


def node_names(directory: Path) -> dict[str, str]:
    """Node directory name -> short label ``nI`` by genesis order."""
    genesis = json.loads((directory / "testnet" / "genesis.json").read_text())
    return {validator["name"]: f"n{index}" for index, validator in enumerate(genesis["validators"])}


def load_events(directory: Path) -> list[Event]:
    events: list[Event] = []
    for name, label in node_names(directory).items():
        path = directory / "testnet" / "nodes" / name / "node.log"
        if path.exists():
            events.extend(parse_node_log(path, label))
    events.extend(parse_proxy_events(directory / "proxy-events.log"))
    events.extend(parse_observer(directory / "observer.jsonl"))
    return sorted(events)


def print_fault(fault: dict[str, Any], number: int, events: Sequence[Event], *, links: bool = True) -> None:
    applied, healed = float(fault["applied_wall"]), float(fault["healed_wall"])
    recovery = fault.get("recovery")
    end = healed + (float(recovery) if recovery is not None else 10.0)
    shown = "never" if recovery is None else f"{recovery:.1f} s"
    print(f"#{number} {fault['kind']}: {fault['description']} (primary {fault['primary']}); "
          f"healed at +{healed - applied:.1f} s, recovered {shown} after; stall {fault['chain_stall']:.1f} s")
    marked_heal = False
    for event in events:
        if not applied - MARGIN_SECONDS <= event.moment <= end + MARGIN_SECONDS:
            continue
        if not links and _LINK_LINE.match(event.text):
            continue
        if not marked_heal and event.moment >= healed:
            print(f"  {healed - applied:+8.3f} ---- healed ----")
            marked_heal = True
        print(f"  {event.moment - applied:+8.3f} {event.source:<5} {event.text[:200]}")
    print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mura.tests.chaos.timeline", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="a campaign's --keep directory")
    parser.add_argument("--fault", type=int, action="append", help="only this fault number (from 1); repeatable")
    parser.add_argument("--no-links", action="store_true", help="leave out links connecting and disconnecting")
    options = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # piped into head: stop quietly
    faults = [json.loads(line) for line in (options.directory / "faults.jsonl").read_text().splitlines() if line]
    events = load_events(options.directory)
    for number, fault in enumerate(faults, 1):
        if options.fault is None or number in options.fault:
            print_fault(fault, number, events, links=not options.no_links)
    return 0


if __name__ == "__main__":
    sys.exit(main())
