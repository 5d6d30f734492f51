"""Real network faults between real validator processes:
``python -m mura.tests.chaos.campaign --minutes N [--seed S] [--validators 4]``.

A testnet of validator processes whose peer links all run through the fault
proxy (``proxy.py``), a steady load of transfers over JSON-RPC
(``traffic.py``), and a schedule of faults drawn from the seed
(``faults.py``), each held for a while and then healed, with a settle period
after each recovery. Every node is polled throughout (``observer.py``). At the
end the load stops, the campaign waits for every accepted transfer to be
final, stops the nodes and checks their stores (``checks.py``).

It prints one line per fault as it goes, then a table per fault kind
(``figures.py`` defines each figure), the liveness targets the network should
meet once its known stalls are fixed, and a last line::

    chaos campaign: PASS (safety held; every heal recovered within 30 s; 0 accepted transfers not final)

PASS needs safety (one chain, valid certificates, no final transaction moved
or lost, balances as the transfers say, nothing finalized across a 2|2 split),
every heal followed by recovery within ``--recovery-bound`` seconds, and
every accepted transfer final by the end; with ``--strict`` the targets too.
The exit status is 0 on PASS and 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mura.bench.rpc import Rpc
from mura.tests.chaos import clock_skew, packet_loss
from mura.tests.chaos.checks import SafetyReport, check_stores
from mura.tests.chaos.clock_skew import ClockSkew
from mura.tests.chaos.faults import KIND_HELP, KINDS, Fault, FaultPlan, draw_plans, resolve
from mura.tests.chaos.figures import FaultFigures, FaultWindow, figures_of, percentile
from mura.tests.chaos.nodes import TIMERS, ChaosCluster, base_timeout_ms
from mura.tests.chaos.observer import Observer, Placement
from mura.tests.chaos.packet_loss import PacketLoss
from mura.tests.chaos.proxy import ProxyProcess
from mura.tests.chaos.report import Targets, fault_line, print_lines, seconds, table
from mura.tests.chaos.traffic import Traffic

COMMAND = "python -m mura.tests.chaos.campaign"
#: Seconds the end of a run waits for every accepted transfer to become final.
DRAIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignOptions:
    """How a campaign runs."""

    #: Wall-clock budget: no fault starts that could not end (held, healed, settled) within it.
    minutes: float = 5.0
    seed: int = 1
    validators: int = 4
    #: Fault kinds to draw from, in turn.
    kinds: tuple[str, ...] = KINDS
    #: Run at most this many faults (None: as many as the budget allows).
    max_faults: int | None = None
    #: Seconds a fault is held, drawn uniformly from this range.
    hold: tuple[float, float] = (15.0, 20.0)
    #: Steady seconds after each recovery (also the "before" window of the next fault).
    settle: float = 8.0
    #: Steady seconds after funding, before the first fault.
    warmup: float = 8.0
    #: Transfers offered per second.
    rate: float = 100.0
    #: How a cut link behaves: "blackhole" (silence) or "reset" (connections reset).
    cut: str = "blackhole"
    #: Consensus timers of the nodes: "production" (the defaults) or "fast" (the process tests').
    timers: str = "production"
    #: A heal must be followed by recovery within this many seconds for the run to pass.
    recovery_bound: float = 30.0
    #: Also fail the run when a liveness target is missed.
    strict: bool = False
    #: The nodes' log level ("debug" adds redials and rebroadcasts, useful with ``timeline``).
    log_level: str = "info"
    #: Keep the testnet, logs and figures in this directory (default: a temporary one, removed).
    keep: Path | None = None
    #: Write the figures as JSON here.
    json_path: Path | None = None


@dataclass(slots=True)
class CampaignResult:
    """What a campaign found."""

    figures: list[FaultFigures] = field(default_factory=list)
    safety: SafetyReport = field(default_factory=SafetyReport)
    #: Lines saying which fault kinds or mechanisms were skipped, and why.
    skipped: list[str] = field(default_factory=list)
    #: Accepted transfers still not final when the run ended.
    not_final: int = 0
    transfers: int = 0
    final_latencies: list[float] = field(default_factory=list)
    #: Faults that missed the targets, with how.
    target_misses: list[str] = field(default_factory=list)
    #: Heals the network did not recover from within the bound.
    slow_recoveries: list[str] = field(default_factory=list)
    #: Transfers the nodes refused (and the traffic submitted again), by rule.
    refusals: dict[str, int] = field(default_factory=dict)
    #: Node exit statuses at the end (0: a clean stop).
    exit_statuses: dict[int, int] = field(default_factory=dict)
    passed: bool = False
    directory: Path | None = None


@dataclass(frozen=True, slots=True)
class Running:
    """What exists while the network runs: the RPC client, the load and the observer."""

    rpc: Rpc
    urls: list[str]
    traffic: Traffic
    observer: Observer


class Campaign:
    """One run: the cluster, the proxy, the load, the observer and the faults."""

    def __init__(self, options: CampaignOptions, directory: Path, out: Callable[[str], None]) -> None:
        self.options = options
        self.directory = directory
        self.out = out
        self.result = CampaignResult(directory=directory)
        self.cluster = ChaosCluster(directory / "testnet", validators=options.validators, timers=options.timers,
                                    log_level=options.log_level)
        self.proxy = ProxyProcess(self.cluster.peer_targets(), seed=options.seed,
                                  events_path=str(directory / "proxy-events.log"))
        self.loss: PacketLoss | None = None
        self.skew: ClockSkew | None = None
        self.skewed_node: int | None = None
        self.real_loss = False
        self.running: Running | None = None
        self.kinds = self._available_kinds()
        self.windows: list[FaultWindow] = []
        self.placements: list[Placement] = []
        self._started = time.monotonic()
        self._timeline = open(directory / "faults.log", "a", buffering=1)  # noqa: SIM115 - closed in run()

    # --- what this machine allows ------------------------------------------------------

    def _available_kinds(self) -> tuple[str, ...]:
        kinds = list(self.options.kinds)
        wants_loss = "packet_loss" in kinds or "wan" in kinds
        reason = packet_loss.unavailable_reason() if wants_loss else None
        if wants_loss and reason is not None:
            self._skip(f"real packet loss skipped: {reason}; wan emulates loss as latency spikes")
            kinds = [kind for kind in kinds if kind != "packet_loss"]
        self.real_loss = wants_loss and reason is None
        if "clock_skew" in kinds:
            reason = clock_skew.unavailable_reason(self.directory)
            if reason is not None:
                self._skip(f"clock skew skipped: {reason}")
                kinds.remove("clock_skew")
            else:
                self.skewed_node = self.options.seed % self.options.validators
                self.skew = ClockSkew(self.directory)
                self.cluster.environments[self.skewed_node] = self.skew.environment()
        return tuple(kinds)

    def _skip(self, line: str) -> None:
        self.result.skipped.append(line)
        self.out(line)

    # --- the run -----------------------------------------------------------------------

    async def run(self) -> CampaignResult:
        try:
            await self._run_network()
        finally:
            self._timeline.close()
        self._check()
        return self.result

    async def _run_network(self) -> None:
        await self.proxy.start()
        try:
            self.cluster.proxy_port = self.proxy.port
            if self.real_loss:
                self.loss = PacketLoss({pair: self.proxy.port(*pair) for pair in self._pairs()})
                self.loss.start()
            await asyncio.to_thread(self.cluster.start_all)
            self.say(f"{self.options.validators} validators up, every link through the proxy "
                     f"({self.options.timers} timers, cuts as {self.options.cut})")
            await self._drive()
        finally:
            if self.loss is not None:
                self.loss.stop()
            self.result.exit_statuses = await asyncio.to_thread(self._stop_nodes)
            await self.proxy.stop()

    def _pairs(self) -> list[tuple[int, int]]:
        count = self.options.validators
        return [(first, second) for first in range(count) for second in range(count) if first != second]

    def _stop_nodes(self) -> dict[int, int]:
        try:
            return self.cluster.stop_all()
        finally:
            self.cluster.close()

    async def _drive(self) -> None:
        urls = [f"http://127.0.0.1:{port}/" for port in self.cluster.rpc_ports]
        async with Rpc(timeout_seconds=5.0, connections=32) as rpc:
            traffic = Traffic(rpc, urls, treasury=self.cluster.treasury, chain_id=self.cluster.chain_id,
                              rate=self.options.rate, seed=self.options.seed)
            observer = Observer(rpc, urls, on_final=traffic.on_final, seed=self.options.seed)
            running = self.running = Running(rpc, urls, traffic, observer)
            await observer.start()
            try:
                for answer in await traffic.fund():
                    self.placements.append(Placement(answer["hash"], 0, answer["block_height"], answer["block_hash"],
                                                     answer["index"], "tx_wait"))
                await traffic.start()
                self.say(f"load: {self.options.rate:g} transfers/s from {len(traffic.senders)} senders")
                await asyncio.sleep(self.options.warmup)
                await self._inject_all(running)
                await traffic.stop()
                await self._drain(running)
            finally:
                await traffic.stop()
                await observer.stop()
                self.placements += observer.placements

    async def _inject_all(self, running: Running) -> None:
        options = self.options
        count = options.max_faults if options.max_faults is not None else 1000
        plans = draw_plans(options.seed, self.kinds, count=count, hold=options.hold)
        deadline = self._started + options.minutes * 60
        for plan in plans:
            needed = plan.hold + options.settle + 10
            if self.windows and time.monotonic() + needed > deadline:
                break
            await self._inject(plan, running)

    async def _inject(self, plan: FaultPlan, running: Running) -> None:
        self.cluster.check_alive()
        observer = running.observer
        fault = resolve(plan, validators=self.options.validators, primary=observer.primary(),
                        cut=self.options.cut, skewed_node=self.skewed_node, real_loss=self.real_loss)
        load = os.getloadavg()[0]
        await self._apply(fault)
        applied, applied_wall = time.monotonic(), time.time()
        height_at_apply = await self._fresh_height(running)
        self.say(f"apply {fault.kind}: {fault.description} (primary {fault.primary}, heights {observer.heights()})")
        await asyncio.sleep(plan.hold)
        await self._heal(fault)
        healed, healed_wall = time.monotonic(), time.time()
        height_at_heal = await self._fresh_height(running)
        self.say(f"heal {fault.kind} (heights {observer.heights()}, views "
                 f"{[timeline.view for timeline in observer.timelines]})")
        bound = max(self.options.recovery_bound, 60.0)
        recovered = await observer.wait_until(lambda: min(observer.heights()) > height_at_heal, timeout=bound)
        window = FaultWindow(fault, applied, healed, height_at_apply, height_at_heal, applied_wall, healed_wall,
                             gave_up_after=None if recovered else bound, load_average=load)
        self.windows.append(window)
        self.say(f"recovered from {fault.kind} in {time.monotonic() - healed:.1f} s" if recovered
                 else f"NOT recovered from {fault.kind} within {bound:.0f} s (heights {observer.heights()})")
        await asyncio.sleep(self.options.settle)

    async def _apply(self, fault: Fault) -> None:
        if fault.rules:
            await self.proxy.set_rules(fault.rules)
        if fault.loss:
            assert self.loss is not None
            self.loss.set_loss(fault.loss)
        if fault.skew:
            assert self.skew is not None
            self.skew.set_offset(fault.skew)

    async def _heal(self, fault: Fault) -> None:
        await self.proxy.heal()
        if self.loss is not None:
            self.loss.clear()
        if self.skew is not None and fault.skew:
            self.skew.set_offset(0)

    async def _fresh_height(self, running: Running) -> int:
        """The highest final height any node reports now (asked afresh, not from the last poll)."""
        answers = await asyncio.gather(*(running.rpc.call(url, "chain_status") for url in running.urls),
                                       return_exceptions=True)
        heights = [int(answer["height"]) for answer in answers if isinstance(answer, dict)]
        return max([*heights, *running.observer.heights()])

    async def _drain(self, running: Running) -> None:
        """Wait until every accepted transfer is final and every node at one height."""
        observer, traffic = running.observer, running.traffic

        def settled() -> bool:
            heights = observer.heights()
            return not traffic.accepted_not_final() and len(set(heights)) == 1

        drained = await observer.wait_until(settled, timeout=DRAIN_SECONDS)
        self.cluster.check_alive()
        self.say(f"load stopped; {'drained' if drained else 'NOT drained'}: "
                 f"{len(traffic.accepted_not_final())} accepted transfers not final, heights {observer.heights()}")

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        wall = time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        line = f"[{elapsed:7.1f} s {wall}] {text}"
        self.out(line)
        self._timeline.write(line + "\n")

    # --- after the run -------------------------------------------------------------------

    def _write_files(self, result: CampaignResult) -> None:
        """What ``timeline`` and later analysis read: faults, the observer's series, every transfer."""
        assert self.running is not None
        with open(self.directory / "faults.jsonl", "w") as file:
            for figures in result.figures:
                file.write(json.dumps(fault_document(figures)) + "\n")
        self.running.observer.dump(self.directory / "observer.jsonl")
        self.running.traffic.dump(self.directory / "transfers.csv")

    def _check(self) -> None:
        result, options = self.result, self.options
        assert self.running is not None, "the run ended before its load started"
        traffic, observer = self.running.traffic, self.running.observer
        result.safety = check_stores([self.cluster.data_dir(index) for index in range(options.validators)],
                                     self.cluster.layout.genesis, self.placements, traffic.records)
        for window in self.windows:
            if not window.fault.healthy and window.height_at_heal > window.height_at_apply + 1:
                result.safety.problem(f"{window.height_at_heal - window.height_at_apply} heights became final "
                                      f"with no quorum connected ({window.fault.description})")
        result.figures = [
            figures_of(window, observer.timelines, traffic.latencies(window.applied, window.healed),
                       settle=options.settle)
            for window in self.windows
        ]
        self._write_files(result)
        result.not_final = len(traffic.accepted_not_final())
        result.refusals = dict(sorted(traffic.refusals.items()))
        result.transfers = len(traffic.records)
        result.final_latencies = traffic.latencies(0.0, float("inf"))
        targets = Targets.for_base_timeout(base_timeout_ms(options.timers))
        for number, figures in enumerate(result.figures, 1):
            misses = targets.misses(figures)
            if misses:
                result.target_misses.append(f"#{number} {figures.window.fault.kind}: {'; '.join(misses)}")
            if figures.recovery is None or figures.recovery > options.recovery_bound:
                result.slow_recoveries.append(
                    f"#{number} {figures.window.fault.kind}: recovery {seconds(figures.recovery)} s"
                )
        result.passed = (result.safety.ok and not result.slow_recoveries and result.not_final == 0
                         and not (options.strict and result.target_misses))


def print_report(result: CampaignResult, options: CampaignOptions, out: Callable[[str], None]) -> None:
    out("")
    out("faults:")
    print_lines([fault_line(number, figures) for number, figures in enumerate(result.figures, 1)], out)
    out("")
    out("per kind (seconds; stall = longest gap between final blocks on healthy nodes during the fault):")
    print_lines(table(result.figures), out)
    latencies = result.final_latencies
    refusals = ", ".join(f"{rule} {count}" for rule, count in result.refusals.items()) or "none"
    out(f"refusals met (each submitted again): {refusals}")
    out(f"all transfers: {result.transfers} signed, finality p50 {seconds(percentile(latencies, 0.5))} s, "
        f"p90 {seconds(percentile(latencies, 0.9))} s, p99 {seconds(percentile(latencies, 0.99))} s, "
        f"max {seconds(latencies[-1] if latencies else None)} s")
    safety = result.safety
    out(f"safety: {'held' if safety.ok else 'VIOLATED'}: heights {safety.heights}, {safety.blocks_checked} shared "
        f"blocks identical, {safety.certificates_checked} certificates valid, {safety.placements_checked} "
        f"reported placements found, {safety.transactions_in_chain} transfers replayed over "
        f"{safety.accounts_checked} accounts")
    for problem in safety.problems:
        out(f"  {problem}")
    if safety.problem_count > len(safety.problems):
        out(f"  ... and {safety.problem_count - len(safety.problems)} more")
    targets = Targets.for_base_timeout(base_timeout_ms(options.timers))
    out(f"targets once fixed: no stall above {targets.no_stall:.1f} s unless the primary is cut off, then one view "
        f"change ({targets.one_view_change:.1f} s); recovery within {targets.recovery:.1f} s of every heal")
    met = len(result.figures) - len(result.target_misses)
    out(f"targets: {'MET' if not result.target_misses else 'MISSED'}: met by {met} of {len(result.figures)} faults")
    for miss in result.target_misses:
        out(f"  {miss}")
    for line in result.skipped:
        out(f"skipped: {line}")
    if any(result.exit_statuses.values()):
        out(f"node exit statuses: {result.exit_statuses}")
    verdict = "PASS" if result.passed else "FAIL"
    recovery = (f"every heal recovered within {options.recovery_bound:g} s" if not result.slow_recoveries
                else f"slow recoveries: {'; '.join(result.slow_recoveries)}")
    out(f"chaos campaign: {verdict} (safety {'held' if safety.ok else 'VIOLATED'}; {recovery}; "
        f"{result.not_final} accepted transfers not final"
        f"{'; targets required' if options.strict else ''})")


def fault_document(figures: FaultFigures) -> dict[str, object]:
    window = figures.window
    return {
        "kind": window.fault.kind,
        "description": window.fault.description,
        "primary": window.fault.primary,
        "held": figures.held,
        "chain_stall": figures.chain_stall,
        "worst_node_stall": figures.worst_node_stall,
        "first_block": figures.first_block,
        "recovery": figures.recovery,
        "rate_before": figures.rate_before,
        "rate_during": figures.rate_during,
        "latency_p50": percentile(figures.latencies, 0.5),
        "latency_p99": percentile(figures.latencies, 0.99),
        "view_changes": figures.view_changes,
        "applied_wall": window.applied_wall,
        "healed_wall": window.healed_wall,
        "load_average": window.load_average,
    }


def write_json(result: CampaignResult, options: CampaignOptions, path: Path) -> None:
    document = {
        "options": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(options).items()},
        "faults": [fault_document(figures) for figures in result.figures],
        "safety_ok": result.safety.ok,
        "safety_problems": result.safety.problems,
        "not_final": result.not_final,
        "target_misses": result.target_misses,
        "passed": result.passed,
    }
    path.write_text(json.dumps(document, indent=1))


def run_campaign(options: CampaignOptions, *, out: Callable[[str], None] = print) -> CampaignResult:
    """Run a whole campaign and print its report; the directory is removed unless kept."""
    directory = options.keep or Path(tempfile.mkdtemp(prefix="mura-chaos-"))
    directory.mkdir(parents=True, exist_ok=True)
    keep = options.keep is not None
    try:
        campaign = Campaign(options, directory, out)
        out(f"chaos campaign: seed {options.seed}, {options.minutes:g} min, kinds {', '.join(campaign.kinds)}; "
            f"load average {os.getloadavg()[0]:.2f}; files in {directory}")
        result = asyncio.run(campaign.run())
        print_report(result, options, out)
        if options.json_path is not None:
            write_json(result, options, options.json_path)
        keep = keep or not result.passed
        return result
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            out(f"node logs, proxy events and figures kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def parse_options(argv: Sequence[str] | None) -> CampaignOptions:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0],
                                     epilog="fault kinds: " + "; ".join(f"{k}: {v}" for k, v in KIND_HELP.items()))
    parser.add_argument("--minutes", type=float, default=5.0, help="time budget (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--kinds", help=f"comma-separated fault kinds (default: all of {', '.join(KINDS)})")
    parser.add_argument("--faults", type=int, help="run at most this many faults")
    parser.add_argument("--hold", default="15,20", help="seconds a fault is held: LOW,HIGH (default 15,20)")
    parser.add_argument("--settle", type=float, default=8.0, help="steady seconds after each recovery (default 8)")
    parser.add_argument("--warmup", type=float, default=8.0, help="steady seconds before the first fault (default 8)")
    parser.add_argument("--rate", type=float, default=100.0, help="transfers per second (default 100)")
    parser.add_argument("--cut", choices=("blackhole", "reset"), default="blackhole", help="how cut links behave")
    parser.add_argument("--timers", choices=sorted(TIMERS), default="production", help="nodes' consensus timers")
    parser.add_argument("--recovery-bound", type=float, default=30.0, help="seconds within which a heal must recover")
    parser.add_argument("--strict", action="store_true", help="fail when a liveness target is missed")
    parser.add_argument("--log-level", choices=("debug", "info"), default="info", help="the nodes' log level")
    parser.add_argument("--keep", type=Path, help="keep the testnet, node logs and timelines in this directory")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    options = parser.parse_args(argv)
    kinds = tuple(options.kinds.split(",")) if options.kinds else KINDS
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(unknown)}")
    low, _, high = options.hold.partition(",")
    return CampaignOptions(
        minutes=options.minutes, seed=options.seed, validators=options.validators, kinds=kinds,
        max_faults=options.faults, hold=(float(low), float(high or low)), settle=options.settle,
        warmup=options.warmup, rate=options.rate,
        cut=options.cut, timers=options.timers, recovery_bound=options.recovery_bound, strict=options.strict,
        log_level=options.log_level, keep=options.keep, json_path=options.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    return 0 if run_campaign(options).passed else 1


if __name__ == "__main__":
    sys.exit(main())
