"""Run many seeds and report: ``python -m mura.sim.campaign --seeds N``.

Each seed is one scenario (n alternates 4 and 7) checked for agreement,
certificates, persist-before-you-speak, validity and liveness. The last line
printed is always the summary::

    seeds=N heights=H view_changes=V violations=0

On a violation the seed and the command that replays it are printed first, and
the exit status is 1. Other modes:

- ``--replay SEED``: run one seed and print what happened (add ``--bug`` to
  replay a seed of a bug hunt).
- ``--find-bug NAME``: run seeds with a deliberately broken replica until the
  checker reports a violation; exit 0 when it does (the checker works).
- ``--report``: print faults injected by type, and the final chains' transactions
  by kind and assets expired, before the summary.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from mura.sim.bugs import bug_names
from mura.sim.scenario import draw_scenario
from mura.sim.simulation import RunResult, run_scenario

COMMAND = "python -m mura.sim.campaign"
#: Violations that show a fork or a double signature, not merely a stall or a bad certificate.
SAFETY = frozenset(
    {
        "agreement",
        "conflicting_certificates",
        "honest_equivocation",
        "validity",
        "ledger",
        "bonds",
        "state",
        "forged_body",
    }
)


@dataclass(frozen=True)
class SeedOutcome:
    """What the parent process needs from one run (results cross process boundaries)."""

    seed: int
    validators: int
    heights: int
    view_changes: int
    violations: tuple[str, ...]
    violation_kinds: tuple[str, ...]
    faults: dict[str, int]
    #: The final chain's transactions by kind, and ``expired_assets``.
    ledger: dict[str, int]
    recovery_ms: int | None
    trace_hash: str


def run_seed(task: tuple[int, str | None, int | None, bool]) -> SeedOutcome:
    seed, bug, validators, certificates = task
    result = run_scenario(draw_scenario(seed, validators=validators, bug=bug), check_certificates=certificates)
    return _outcome(result)


def _outcome(result: RunResult) -> SeedOutcome:
    return SeedOutcome(
        seed=result.scenario.seed,
        validators=result.scenario.validators,
        heights=result.heights,
        view_changes=result.view_changes,
        violations=tuple(str(violation) for violation in result.violations),
        violation_kinds=tuple(violation.kind for violation in result.violations),
        faults=dict(result.faults),
        ledger=dict(result.ledger),
        recovery_ms=result.recovery_ms,
        trace_hash=result.trace_hash,
    )


@dataclass
class Totals:
    seeds: int = 0
    heights: int = 0
    view_changes: int = 0
    violations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    ledger: Counter[str] = field(default_factory=Counter)
    by_validators: Counter[int] = field(default_factory=Counter)
    slowest_recovery_ms: int = 0

    def add(self, outcome: SeedOutcome) -> None:
        self.seeds += 1
        self.heights += outcome.heights
        self.view_changes += outcome.view_changes
        self.violations += 1 if outcome.violations else 0
        self.faults.update(outcome.faults)
        self.ledger.update(outcome.ledger)
        self.by_validators[outcome.validators] += 1
        if outcome.recovery_ms is not None:
            self.slowest_recovery_ms = max(self.slowest_recovery_ms, outcome.recovery_ms)

    def summary(self) -> str:
        return (
            f"seeds={self.seeds} heights={self.heights} view_changes={self.view_changes} violations={self.violations}"
        )


def outcomes(
    seeds: Sequence[int], *, bug: str | None, validators: int | None, jobs: int, certificates: bool = True
) -> Iterator[SeedOutcome]:
    """Run ``seeds`` (in ``jobs`` processes), yielding outcomes in seed order."""
    tasks = [(seed, bug, validators, certificates) for seed in seeds]
    if jobs <= 1:
        yield from map(run_seed, tasks)
        return
    with multiprocessing.Pool(jobs) as pool:
        yield from pool.imap(run_seed, tasks, chunksize=8)


def replay_command(seed: int, bug: str | None, validators: int | None, *, safety_only: bool = False) -> str:
    command = f"{COMMAND} --replay {seed}"
    if bug is not None:
        command += f" --bug {bug}"
    if validators is not None:
        command += f" --validators {validators}"
    if safety_only:
        command += " --safety-only"
    return command


def campaign(arguments: argparse.Namespace) -> int:
    totals = Totals()
    seeds = range(arguments.start, arguments.start + arguments.seeds)
    for outcome in outcomes(seeds, bug=arguments.bug, validators=arguments.validators, jobs=arguments.jobs):
        totals.add(outcome)
        if outcome.violations:
            print(f"violation in seed {outcome.seed} (n={outcome.validators}): {'; '.join(outcome.violations)}")
            print(f"replay: {replay_command(outcome.seed, arguments.bug, arguments.validators)}")
    if arguments.report:
        print_report(totals)
    print(totals.summary())
    return 1 if totals.violations else 0


def print_report(totals: Totals) -> None:
    print(f"validators: {dict(sorted(totals.by_validators.items()))}")
    print(f"slowest recovery after healing: {totals.slowest_recovery_ms} ms")
    for kind, count in sorted(totals.faults.items()):
        print(f"faults {kind}={count}")
    for kind, count in sorted(totals.ledger.items()):
        print(f"final {kind}={count}")


def find_bug(arguments: argparse.Namespace) -> int:
    """Seeds until the checker catches ``--find-bug``; exit 0 when it does."""
    seeds = range(arguments.start, arguments.start + arguments.seeds)
    certificates = not arguments.safety_only
    run = 0
    bug, validators = arguments.find_bug, arguments.validators
    for outcome in outcomes(seeds, bug=bug, validators=validators, jobs=arguments.jobs, certificates=certificates):
        run += 1
        kinds = [kind for kind in outcome.violation_kinds if certificates or kind in SAFETY]
        if kinds:
            print(f"bug={arguments.find_bug} caught_after_seeds={run} seed={outcome.seed} kind={kinds[0]}")
            print(f"replay: {replay_command(outcome.seed, bug, validators, safety_only=not certificates)}")
            return 0
    print(f"bug={arguments.find_bug} not caught in {run} seeds")
    return 1


def replay(arguments: argparse.Namespace) -> int:
    scenario = draw_scenario(arguments.replay, validators=arguments.validators, bug=arguments.bug)
    print(scenario)
    result = run_scenario(scenario, check_certificates=not arguments.safety_only)
    print(f"trace={result.trace_hash} end_ms={result.end_ms} recovery_ms={result.recovery_ms}")
    for kind, count in sorted(result.faults.items()):
        print(f"faults {kind}={count}")
    for kind, count in sorted(result.ledger.items()):
        print(f"final {kind}={count}")
    for violation in result.violations:
        print(f"violation: {violation}")
    totals = Totals()
    totals.add(_outcome(result))
    print(totals.summary())
    return 1 if result.violations else 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__, formatter_class=formatter)
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds to run (default 200)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--validators", type=int, metavar="N", help="fix n (default: 4 and 7 alternately)")
    cores = multiprocessing.cpu_count()
    parser.add_argument("--jobs", type=int, default=cores, help="processes (default: one per core)")
    parser.add_argument("--bug", choices=sorted(bug_names()), help="run a deliberately broken replica")
    parser.add_argument("--replay", type=int, metavar="SEED", help="run one seed and describe it")
    parser.add_argument("--find-bug", choices=sorted(bug_names()), help="run seeds until the checker catches this bug")
    parser.add_argument(
        "--safety-only",
        action="store_true",
        help="with --find-bug or --replay: count only forks and double signing, not bad certificates or stalls",
    )
    parser.add_argument("--report", action="store_true", help="print faults injected and final transactions by kind")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse(sys.argv[1:] if argv is None else argv)
    if arguments.replay is not None:
        return replay(arguments)
    if arguments.find_bug is not None:
        return find_bug(arguments)
    return campaign(arguments)


if __name__ == "__main__":
    sys.exit(main())
