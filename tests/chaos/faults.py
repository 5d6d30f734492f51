"""The faults a campaign injects, and how each becomes proxy rules, packet loss or clock skew.

A ``FaultPlan`` is drawn from the seed before the run (kind, how long it is
held, a number that picks nodes and links). It is resolved only when applied,
because some kinds aim at the primary of the view the network is in then
(``chain_status`` reports the view; the primary of view v is validator
v mod n).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import permutations

from mura.chain.block import quorum_size
from mura.tests.chaos.proxy import Rule, cut_mode

Pair = tuple[int, int]

#: Every kind, in the order tables list them. See ``describe_kinds`` for what each does.
KINDS = (
    "cut_one_way",
    "cut_both_ways",
    "bridge",
    "isolate_primary",
    "isolate_backup",
    "split_2_2",
    "wan",
    "packet_loss",
    "flaky",
    "flaky_fast",
    "throttle_primary",
    "clock_skew",
)

KIND_HELP = {
    "cut_one_way": "one directed link cut (i->j), the other direction passes",
    "cut_both_ways": "one link between two backups cut both ways",
    "bridge": "the primary and one backup cannot hear each other; the other two hear both",
    "isolate_primary": "the primary cut off from everyone (a 1|3 partition)",
    "isolate_backup": "one backup cut off from everyone (a 1|3 partition)",
    "split_2_2": "two halves (2|2 of four: no quorum anywhere), then healed",
    "wan": "every link delayed 50 ms + up to 50 ms jitter, with loss (real, or as latency spikes)",
    "packet_loss": "5% real packet loss on every link (iptables)",
    "flaky": "every connection reset after a random 1-5 s lifetime, mid-frame",
    "flaky_fast": "every connection reset after a random 0.5-1.5 s lifetime",
    "throttle_primary": "every link of the primary throttled to 24 kB/s each way",
    "clock_skew": "one node's wall clock stepped 4 s ahead (libfaketime), then back",
}

#: Skew applied by ``clock_skew``, in seconds.
SKEW_SECONDS = 4


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A fault drawn for a run, resolved against the network when applied."""

    kind: str
    #: Seconds the fault is held before it is healed.
    hold: float
    #: Picks nodes and links among those the kind allows.
    choice: int


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault ready to apply: what it does, and what the network should do meanwhile."""

    kind: str
    description: str
    #: Proxy rules, by directed pair.
    rules: dict[Pair, Rule] = field(default_factory=dict)
    #: Real packet loss probability, by directed pair.
    loss: dict[Pair, float] = field(default_factory=dict)
    #: Seconds of wall-clock skew on the skewed node.
    skew: int = 0
    #: Nodes linked to a quorum (directly to every member of one) during the fault: the chain
    #: should go on as they see it.
    healthy: frozenset[int] = frozenset()
    #: True when the fault touches the primary of the view it was applied in.
    touches_primary: bool = False
    #: The primary when the fault was applied.
    primary: int = 0


def draw_plans(seed: int, kinds: Sequence[str], *, count: int, hold: tuple[float, float]) -> list[FaultPlan]:
    """``count`` plans cycling through ``kinds`` in an order shuffled per round."""
    chooser = random.Random(seed)
    plans: list[FaultPlan] = []
    while len(plans) < count:
        round_kinds = list(kinds)
        chooser.shuffle(round_kinds)
        for kind in round_kinds[: count - len(plans)]:
            plans.append(FaultPlan(kind, round(chooser.uniform(*hold), 1), chooser.randrange(1 << 30)))
    return plans


def resolve(
    plan: FaultPlan, *, validators: int, primary: int, cut: str, skewed_node: int | None, real_loss: bool
) -> Fault:
    """The fault ``plan`` stands for, in a network whose primary is ``primary`` now."""
    chooser = random.Random(plan.choice)
    everyone = frozenset(range(validators))
    backups = sorted(everyone - {primary})
    cut_rule = Rule(cut=cut_mode(cut))
    kind = plan.kind
    if kind == "cut_one_way":
        sender, receiver = chooser.choice(list(permutations(range(validators), 2)))
        return Fault(
            kind, f"{sender}->{receiver} cut ({cut}), {receiver}->{sender} passes",
            rules={(sender, receiver): cut_rule}, healthy=everyone,
            touches_primary=primary in (sender, receiver), primary=primary,
        )
    if plan.kind in ("cut_both_ways", "bridge"):
        if plan.kind == "bridge":
            first, second = primary, chooser.choice(backups)
        else:
            first, second = chooser.sample(backups, 2)
        return Fault(
            kind, f"{first}<->{second} cut ({cut}); the others hear both",
            rules={(first, second): cut_rule, (second, first): cut_rule}, healthy=everyone,
            touches_primary=primary in (first, second), primary=primary,
        )
    if plan.kind in ("isolate_primary", "isolate_backup"):
        alone = primary if plan.kind == "isolate_primary" else chooser.choice(backups)
        return Fault(
            kind, f"{alone} isolated ({cut}), {validators - 1} others connected",
            rules=_cut_between({alone}, everyone - {alone}, cut_rule), healthy=everyone - {alone},
            touches_primary=alone == primary, primary=primary,
        )
    if plan.kind == "split_2_2":
        # Halves (2|2 of four, 3|4 of seven): neither holds a quorum.
        half = {primary, *chooser.sample(backups, validators // 2 - 1)}
        rest = everyone - half
        return Fault(
            kind, f"{sorted(half)} | {sorted(rest)} ({cut})",
            rules=_cut_between(half, rest, cut_rule), touches_primary=True,
            healthy=rest if len(rest) >= quorum_size(validators) else frozenset(), primary=primary,
        )
    return _degrade(plan, validators=validators, primary=primary, skewed_node=skewed_node, real_loss=real_loss)


def _degrade(
    plan: FaultPlan, *, validators: int, primary: int, skewed_node: int | None, real_loss: bool
) -> Fault:
    """Kinds that slow or disturb links or clocks without cutting anyone off."""
    everyone = frozenset(range(validators))
    links = list(permutations(range(validators), 2))
    kind = plan.kind

    def fault(description: str, *, rules: dict[Pair, Rule] | None = None, loss: dict[Pair, float] | None = None,
              skew: int = 0, touches_primary: bool = True) -> Fault:
        return Fault(kind, description, rules=rules or {}, loss=loss or {}, skew=skew, healthy=everyone,
                     touches_primary=touches_primary, primary=primary)

    if kind == "wan":
        if real_loss:
            return fault("delay 50+0..50 ms and 2% real loss on every link",
                         rules=dict.fromkeys(links, Rule(delay_ms=50, jitter_ms=50)), loss=dict.fromkeys(links, 0.02))
        spiky = Rule(delay_ms=50, jitter_ms=50, spike_probability=0.02, spike_ms=300)
        return fault("delay 50+0..50 ms and 2% of chunks held 300 ms (loss as latency spikes)",
                     rules=dict.fromkeys(links, spiky))
    if kind == "packet_loss":
        return fault("5% real packet loss on every link", loss=dict.fromkeys(links, 0.05))
    if kind in ("flaky", "flaky_fast"):
        lifetime = (1.0, 5.0) if kind == "flaky" else (0.5, 1.5)
        return fault(f"every connection reset after {lifetime[0]:g}-{lifetime[1]:g} s",
                     rules=dict.fromkeys(links, Rule(lifetime=lifetime)))
    if kind == "throttle_primary":
        touched = [link for link in links if primary in link]
        return fault(f"every link of {primary} at 24 kB/s each way", rules=dict.fromkeys(touched, Rule(rate=24_000)))
    if kind == "clock_skew":
        assert skewed_node is not None, "clock_skew needs a node started under libfaketime"
        return fault(f"{skewed_node}'s wall clock {SKEW_SECONDS:+d} s", skew=SKEW_SECONDS,
                     touches_primary=skewed_node == primary)
    raise ValueError(f"unknown fault kind {kind!r}")


def _cut_between(side: set[int] | frozenset[int], other: set[int] | frozenset[int], rule: Rule) -> dict[Pair, Rule]:
    rules = {}
    for first in side:
        for second in other:
            rules[(first, second)] = rule
            rules[(second, first)] = rule
    return rules
