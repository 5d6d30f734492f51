"""What one simulated run does, drawn from its seed.

A scenario fixes the validator count, which validators are byzantine and how,
the network's delays, losses and duplicates, the partitions and crashes of
the fault phase, the replica settings and the clients' workload. Everything
heals at ``heal_at_ms``; from then on at most f validators are faulty, the
network delivers every message and clients keep transactions coming, so new
heights must become final within ``liveness_bound_ms``.

The workload is busy (every mempool has transactions) except for idle
stretches, when clients submit nothing: once a block proposed in the stretch
is final at a node its mempool is empty, until transactions reach it again at
the stretch's end (each node a little later, as gossip goes). An idle chain
makes an empty block every ``empty_proposal_delay_ms``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field, replace

from mura.consensus.quorum import max_faulty
from mura.sim.bond_workload import BondPlan, schedule
from mura.sim.reconfiguration import Reconfiguration


class Byzantine(enum.Enum):
    """How a faulty validator misbehaves."""

    #: Never sends anything.
    SILENT = "silent"
    #: As primary, proposes different blocks to different halves and votes for both;
    #: as new primary, ignores the prepared block its view changes force; withholds commits.
    EQUIVOCATOR = "equivocator"
    #: Sends malformed bytes, badly signed messages and messages for far-future views and heights.
    GARBAGE = "garbage"
    #: Two honest-code instances share its key, one on each side of a partition.
    TWIN = "twin"
    #: Hands out genuine headers with forged bodies: in its proposals (to half the
    #: validators), its NEW-VIEW re-proposals, final blocks it pushes the moment it
    #: has them, and its answers to replicas catching up.
    SWAPPER = "swapper"


@dataclass(frozen=True)
class Partition:
    """From ``start_ms`` to ``end_ms`` messages between the two sides are lost."""

    start_ms: int
    end_ms: int
    #: Node ids on one side; every other node is on the other.
    side: frozenset[int]


@dataclass(frozen=True)
class LinkCut:
    """From ``start_ms`` to ``end_ms`` messages from node ``source`` to node ``target`` are
    lost (one direction of one link; cut both for a link that is down)."""

    start_ms: int
    end_ms: int
    source: int
    target: int


@dataclass(frozen=True)
class Crash:
    """Node ``node`` crashes at ``at_ms`` (possibly in the middle of executing actions)
    and restarts ``down_ms`` later with only its ledger and vote record; with ``wipe``,
    with its vote record only (its chain data wiped: it resyncs from its peers); with
    ``lose_record`` as well, with neither."""

    node: int
    at_ms: int
    down_ms: int
    wipe: bool = False
    #: The vote record is lost too (a key moved to a new machine): the double-sign check.
    lose_record: bool = False
    #: The node that crashes is the primary of the view the nodes are in at ``at_ms``
    #: (``node`` is then ignored).
    primary: bool = False


@dataclass(frozen=True)
class IdleStretch:
    """From ``start_ms`` clients submit nothing; from ``end_ms`` they do again, and their
    transactions reach node i ``arrival_ms[i]`` after ``end_ms``."""

    start_ms: int
    end_ms: int
    arrival_ms: tuple[int, ...]

    def arrival_at(self, node: int) -> int:
        return self.end_ms + self.arrival_ms[node]


@dataclass(frozen=True)
class Scenario:
    seed: int
    validators: int
    #: Faulty validators by index, and how they fail.
    byzantine: dict[int, Byzantine] = field(default_factory=dict)
    min_delay_ms: int = 2
    max_delay_ms: int = 60
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    #: Extra loss for COMMIT messages: an adversarial scheduler that leaves heights
    #: final at some replicas only, so view changes must carry prepared blocks.
    commit_loss: float = 0.0
    #: When the extra COMMIT loss stops (None: at healing), and when it starts.
    commit_loss_until_ms: int | None = None
    commit_loss_from_ms: int = 0
    partitions: tuple[Partition, ...] = ()
    #: Single links (or one direction of them) down for a while.
    link_cuts: tuple[LinkCut, ...] = ()
    #: If set, the longest wait between two new final heights during the fault phase
    #: must stay within this: for faults that leave a quorum connected, which must not
    #: stop the chain.
    max_stall_ms: int | None = None
    crashes: tuple[Crash, ...] = ()
    #: A new network: every validator's vote record starts new (the double-sign check
    #: runs at the first height).
    new_network: bool = False
    #: Nodes started late, by node id: (node id, start time), as operators start their
    #: validators one after another.
    late_starts: tuple[tuple[int, int], ...] = ()
    heal_at_ms: int = 8_000
    base_timeout_ms: int = 1_000
    max_timeout_ms: int = 4_000
    proposal_delay_ms: int = 150
    #: Largest clock offset of a node (each node's clock runs ahead by up to this).
    max_clock_skew_ms: int = 20
    #: The idle interval: with nothing pending, how long a primary waits before an
    #: empty block (None: ``proposal_delay_ms``).
    empty_proposal_delay_ms: int | None = None
    #: Stretches without transactions, all before ``heal_at_ms``.
    idle: tuple[IdleStretch, ...] = ()
    #: No fault at all: an honest replica changing views is a violation.
    quiet: bool = False
    #: Holders the chain pays per block (None: ``PAYMENTS_PER_BLOCK``); a small number spreads
    #: each payment of the simulated bond over several blocks.
    payments_per_block: int | None = None
    #: A deliberately injected bug (see ``bugs.py``), or None for the real replica.
    bug: str | None = None
    #: Nodes that join the run (new validators, or a rotated key's new holder): followers
    #: until their change takes effect, numbered after the genesis validators.
    joiners: int = 0
    #: Changes of the validator set the validators make by governance (``reconfiguration``).
    reconfigurations: tuple[Reconfiguration, ...] = ()

    @property
    def faulty(self) -> int:
        """f of the largest set the run may have."""
        return max_faulty(self.validators + self.joiners)

    @property
    def liveness_bound_ms(self) -> int:
        """After healing, new heights must be final within this long: enough for every
        honest replica to time out through f+2 views at the ceiling, twice, and catch up."""
        return 2 * (self.faulty + 2) * self.max_timeout_ms + 5_000

    def node_count(self) -> int:
        return self.members + sum(1 for kind in self.byzantine.values() if kind is Byzantine.TWIN)

    @property
    def members(self) -> int:
        """Validator numbers in the run: the genesis validators, then the joiners."""
        return self.validators + self.joiners

    def node_validators(self) -> list[int]:
        """The validator number each node id runs: genesis validators in order, the joiners,
        then the twins' second instances."""
        twins = [index for index, kind in sorted(self.byzantine.items()) if kind is Byzantine.TWIN]
        return list(range(self.members)) + twins

    def with_bug(self, bug: str | None) -> Scenario:
        return replace(self, bug=bug)


#: The share of campaign seeds that are idle scenarios (``idle_scenario``), and of the others
#: that put a fault on a payment of the simulated bond (``payment_fault_scenario``).
IDLE_SHARE = 0.2
PAYMENT_FAULT_SHARE = 0.05
#: The share of the other seeds whose validator set changes during the run (``reconfiguration_scenario``).
RECONFIGURATION_SHARE = 0.1
#: The share of seeds whose chain pays one or two holders a block, so that payments span blocks.
SPREAD_PAYMENTS_SHARE = 0.2


def draw_payments_per_block(seed: int) -> int | None:
    """Holders paid per block in ``seed``'s run: the chain's own limit, or in some seeds one
    or two (a draw of its own, so the other draws stay what they were)."""
    rng = random.Random(f"payments-{seed}")
    return rng.choice((1, 2)) if rng.random() < SPREAD_PAYMENTS_SHARE else None


def draw_scenario(seed: int, *, validators: int | None = None, bug: str | None = None) -> Scenario:
    """The scenario of ``seed``: n alternates 4 and 7 unless given; up to f byzantine;
    one in five or so is an idle chain instead (``idle_scenario``), and one in twenty of the
    others a fault aimed at a payment of the bond (``payment_fault_scenario``)."""
    n = validators if validators is not None else (4 if seed % 2 == 0 else 7)
    # A draw of its own, so that the other seeds' scenarios stay what they were.
    if random.Random(f"idle-{seed}").random() < IDLE_SHARE:
        return idle_scenario(seed, validators=n, bug=bug)
    if random.Random(f"payment-fault-{seed}").random() < PAYMENT_FAULT_SHARE:
        return payment_fault_scenario(seed, validators=n, bug=bug)
    if random.Random(f"reconfiguration-{seed}").random() < RECONFIGURATION_SHARE:
        # Imported here: that family's module builds on this one.
        from mura.sim.reconfiguration_scenario import reconfiguration_scenario

        return reconfiguration_scenario(seed, bug=bug)
    rng = random.Random(seed)
    f = max_faulty(n)
    byzantine = _draw_byzantine(rng, n, f)
    nodes = n + sum(1 for kind in byzantine.values() if kind is Byzantine.TWIN)
    heal_at = rng.randrange(4_000, 9_000)
    max_timeout = rng.choice((2_000, 4_000, 8_000))
    return Scenario(
        seed=seed,
        validators=n,
        payments_per_block=draw_payments_per_block(seed),
        byzantine=byzantine,
        min_delay_ms=rng.randrange(1, 10),
        max_delay_ms=rng.randrange(20, 200),
        drop_rate=rng.choice((0.0, 0.0, 0.01, 0.05, 0.15)),
        duplicate_rate=rng.choice((0.0, 0.02, 0.1, 0.3)),
        commit_loss=rng.choice((0.0, 0.0, 0.2, 0.5)),
        partitions=_draw_partitions(rng, nodes, heal_at, byzantine, n),
        link_cuts=_draw_link_cuts(rng, nodes, heal_at),
        crashes=_draw_crashes(rng, n, heal_at, byzantine),
        heal_at_ms=heal_at,
        base_timeout_ms=rng.choice((500, 1_000)),
        max_timeout_ms=max_timeout,
        proposal_delay_ms=rng.randrange(50, 400),
        max_clock_skew_ms=rng.randrange(0, 50),
        bug=bug,
    )


def _draw_byzantine(rng: random.Random, n: int, f: int) -> dict[int, Byzantine]:
    count = rng.randint(0, f)
    chosen = rng.sample(range(n), count)
    kinds = [
        Byzantine.SILENT,
        Byzantine.EQUIVOCATOR,
        Byzantine.EQUIVOCATOR,
        Byzantine.GARBAGE,
        Byzantine.TWIN,
        Byzantine.SWAPPER,
        Byzantine.SWAPPER,
    ]
    return {index: rng.choice(kinds) for index in sorted(chosen)}


def _draw_partitions(
    rng: random.Random, nodes: int, heal_at: int, byzantine: dict[int, Byzantine], n: int
) -> tuple[Partition, ...]:
    partitions = []
    twins = [index for index, kind in sorted(byzantine.items()) if kind is Byzantine.TWIN]
    if twins:
        # Each twin's two instances on opposite sides, from the start.
        others = [node for node in range(n) if node not in twins]
        twin_side = frozenset(twins) | frozenset(rng.sample(others, rng.randint(0, len(others))))
        partitions.append(Partition(0, rng.randrange(heal_at // 2, heal_at), twin_side))
    for _ in range(rng.choice((0, 1, 1, 2))):
        start = rng.randrange(0, heal_at - 500)
        end = rng.randrange(start + 100, heal_at)
        side = frozenset(rng.sample(range(nodes), rng.randint(1, nodes - 1)))
        partitions.append(Partition(start, end, side))
    return tuple(partitions)


def _draw_link_cuts(rng: random.Random, nodes: int, heal_at: int) -> tuple[LinkCut, ...]:
    """Up to two links down for a while, some in one direction only."""
    cuts = []
    for _ in range(rng.choice((0, 0, 1, 2))):
        source, target = rng.sample(range(nodes), 2)
        start = rng.randrange(0, heal_at - 500)
        end = rng.randrange(start + 100, heal_at)
        cuts.append(LinkCut(start, end, source, target))
        if rng.random() < 0.7:
            cuts.append(LinkCut(start, end, target, source))
    return tuple(cuts)


def _draw_crashes(rng: random.Random, n: int, heal_at: int, byzantine: dict[int, Byzantine]) -> tuple[Crash, ...]:
    """Crashes of honest validators, some wiping the chain data. A validator that loses its
    vote record signs nothing until the others have moved on without it, so for liveness
    it counts as a fault: records are lost only within the faults the byzantine leave."""
    honest = [index for index in range(n) if index not in byzantine]
    spare = max_faulty(n) - len(byzantine)
    crashes: list[Crash] = []
    losers: set[int] = set()
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        at = rng.randrange(0, heal_at - 300)
        down = rng.randrange(50, min(3_000, heal_at - at))
        node = rng.choice(honest)
        wipe = rng.random() < 0.3
        lose = wipe and rng.random() < 0.4 and (node in losers or len(losers) < spare)
        if lose:
            losers.add(node)
        crashes.append(Crash(node, at, down, wipe=wipe, lose_record=lose))
    return tuple(crashes)


def twins_scenario(seed: int, *, validators: int, twins: int, bug: str | None = None) -> Scenario:
    """``twins`` validators run two instances each, split by a partition that lasts the
    whole fault phase, with the honest validators divided evenly between the sides.
    With f twins the run must stay safe; with f+1 both sides can gather a quorum."""
    rng = random.Random(seed)
    honest = list(range(twins, validators))
    side = frozenset(range(twins)) | frozenset(honest[: len(honest) // 2])
    heal_at = rng.randrange(3_000, 6_000)
    return Scenario(
        seed=seed,
        validators=validators,
        byzantine={index: Byzantine.TWIN for index in range(twins)},
        max_delay_ms=rng.randrange(20, 100),
        partitions=(Partition(0, heal_at, side),),
        heal_at_ms=heal_at,
        proposal_delay_ms=rng.randrange(50, 300),
        max_clock_skew_ms=50,
        bug=bug,
    )


def staggered_start_scenario(seed: int, *, validators: int | None = None, bug: str | None = None) -> Scenario:
    """A new network (every vote record new) whose validators start one after another:
    those started late hear the first ones signing at height 1, and all must still
    take part. Some messages are lost and delayed on the way."""
    rng = random.Random(seed)
    n = validators if validators is not None else rng.choice((4, 7))
    late = rng.sample(range(n), rng.randrange(1, n))
    return Scenario(
        seed=seed,
        validators=n,
        new_network=True,
        late_starts=tuple((node, rng.randrange(100, 3_000)) for node in sorted(late)),
        max_delay_ms=rng.randrange(10, 100),
        drop_rate=rng.choice((0.0, 0.02)),
        heal_at_ms=3_500,
        base_timeout_ms=500,
        max_timeout_ms=2_000,
        bug=bug,
    )


def link_fault_scenario(seed: int, *, validators: int = 4, bug: str | None = None) -> Scenario:
    """Faults that leave a quorum connected and so must not stop the chain: one link down
    both ways, one link down one way, a bridge (two validators that cannot hear each
    other, both linked to the rest), or one validator cut off from everyone (when it is
    the primary, one view change is owed). The longest wait between two final heights
    is bounded by a view change and its proposal."""
    rng = random.Random(seed)
    kind = rng.choice(("link", "one_way", "bridge", "isolated"))
    first, second = rng.sample(range(validators), 2)
    heal_at = rng.randrange(5_000, 8_000)
    if kind == "isolated":
        pairs = [(first, other) for other in range(validators) if other != first]
        pairs += [(other, first) for other in range(validators) if other != first]
    elif kind == "one_way":
        pairs = [(first, second)]
    else:
        pairs = [(first, second), (second, first)]
    base, proposal = 500, rng.randrange(50, 200)
    return Scenario(
        seed=seed,
        validators=validators,
        link_cuts=tuple(LinkCut(0, heal_at, source, target) for source, target in pairs),
        min_delay_ms=rng.randrange(1, 10),
        max_delay_ms=rng.randrange(20, 80),
        heal_at_ms=heal_at,
        base_timeout_ms=base,
        max_timeout_ms=2_000,
        proposal_delay_ms=proposal,
        # One view change (its timeout, the view-change round, the new proposal) and a
        # round of catching up, with room for the slowest deliveries.
        max_stall_ms=2 * base + proposal + 600,
        bug=bug,
    )


def crash_scenario(seed: int, *, bug: str | None = None) -> Scenario:
    """A family aimed at persist-before-you-speak: n=4, no byzantine validator, and many
    short crashes, most of them of the primary of view 0, so that crashes strike between
    a vote's recording and its sending (and some wipe the chain data too)."""
    rng = random.Random(seed)
    loser = rng.randrange(4)
    crashes = tuple(
        Crash(
            node,
            rng.randrange(0, 4_000),
            rng.randrange(50, 600),
            wipe=rng.random() < 0.3,
            # One validator may lose its record (it counts as the one fault tolerated).
            lose_record=node == loser and rng.random() < 0.3,
        )
        for node in (rng.choice((0, 0, 0, 1, 2, 3)) for _ in range(6))
    )
    return Scenario(
        seed=seed,
        validators=4,
        crashes=crashes,
        max_delay_ms=rng.randrange(20, 100),
        heal_at_ms=5_000,
        base_timeout_ms=500,
        max_timeout_ms=2_000,
        proposal_delay_ms=rng.randrange(50, 200),
        bug=bug,
    )


def body_swap_scenario(seed: int, *, bug: str | None = None) -> Scenario:
    """A family aimed at a block's body: n=4 with validator 1 a swapper (the primary of
    view 1), an adversarial scheduler that loses COMMITs at first (so views change and
    its NEW-VIEW re-proposes a prepared header with a forged body), and one honest
    replica cut off for a while (so it catches up, from the swapper among others)."""
    rng = random.Random(seed)
    victim = rng.choice((0, 2, 3))
    return Scenario(
        seed=seed,
        validators=4,
        byzantine={1: Byzantine.SWAPPER},
        commit_loss=0.6,
        commit_loss_until_ms=rng.randrange(400, 1_500),
        partitions=(Partition(rng.randrange(0, 1_000), rng.randrange(1_500, 4_000), frozenset({victim})),),
        max_delay_ms=rng.randrange(20, 150),
        duplicate_rate=rng.choice((0.0, 0.1)),
        heal_at_ms=6_000,
        base_timeout_ms=500,
        max_timeout_ms=2_000,
        bug=bug,
    )


def new_view_attack_scenario(seed: int, *, bug: str | None = None) -> Scenario:
    """A family aimed at the NEW-VIEW rule: n=4 with an equivocating validator 1 (the
    primary of view 1) and an adversarial scheduler that loses most COMMITs of the first
    height, then cuts one honest replica off: when that replica was the only one to see
    the height final, the others change views to view 1 with the block prepared, and
    nobody can tell them it is final."""
    rng = random.Random(seed)
    victim = rng.choice((0, 2, 3))
    return Scenario(
        seed=seed,
        validators=4,
        byzantine={1: Byzantine.EQUIVOCATOR},
        commit_loss=0.6,
        commit_loss_until_ms=450,
        partitions=(Partition(400, 3_000, frozenset({victim})),),
        max_delay_ms=rng.randrange(20, 150),
        heal_at_ms=6_000,
        base_timeout_ms=500,
        max_timeout_ms=2_000,
        bug=bug,
    )


def idle_scenario(seed: int, *, validators: int | None = None, bug: str | None = None) -> Scenario:
    """An idle chain: busy spells and idle stretches (some shorter than the idle interval,
    some several intervals long), with one of: no fault at all (no view may change), the
    primary crashing during a stretch (it must be replaced within the interval and a
    view timeout, and sooner once transactions come), or transactions reaching one
    validator far later than the rest at each stretch's end (when it is the primary, the
    others replace it). The crashed primary may lose its chain data. The network loses
    nothing; messages may be duplicated."""
    rng = random.Random(f"idle-scenario-{seed}")
    n = validators if validators is not None else rng.choice((4, 7))
    interval = rng.choice((3_000, 10_000, 60_000))
    base_timeout = rng.choice((500, 1_000))
    max_delay = rng.randrange(20, 100)
    variant = rng.choice(("quiet", "quiet", "crash", "late"))
    stretches: list[IdleStretch] = []
    now = rng.randrange(300, 2_000)
    for _ in range(rng.randint(1, 3)):
        length = int(interval * rng.choice((0.4, 1.5, 3.3, 5.5)))
        # Gossip spreads transactions within two deliveries; the client's node has them first.
        arrivals = [rng.randrange(0, 2 * max_delay) for _ in range(n)]
        arrivals[rng.randrange(n)] = 0
        if variant == "late":
            arrivals[rng.randrange(n)] = rng.randrange(2 * base_timeout, 3 * base_timeout)
        stretches.append(IdleStretch(now, now + length, tuple(arrivals)))
        now += length + max(arrivals) + rng.randrange(300, 1_000)
    crashes: tuple[Crash, ...] = ()
    if variant == "crash":
        stretch = rng.choice(stretches)
        # Often shortly before transactions come back: they must bring the replacement forward.
        at = rng.choice((rng.randrange(stretch.start_ms, stretch.end_ms), stretch.end_ms - rng.randrange(100, 2_000)))
        down = rng.choice((interval // 2, 2 * interval + base_timeout))
        # Some wipe the chain data: the node resyncs from peers that have nothing to say.
        crashes = (Crash(0, max(at, stretch.start_ms), down, wipe=rng.random() < 0.3, primary=True),)
    proposal_delay = rng.randrange(50, 300)
    return Scenario(
        seed=seed,
        validators=n,
        min_delay_ms=rng.randrange(1, 10),
        max_delay_ms=max_delay,
        duplicate_rate=rng.choice((0.0, 0.1)),
        crashes=crashes,
        heal_at_ms=now,
        base_timeout_ms=base_timeout,
        max_timeout_ms=4 * base_timeout,
        proposal_delay_ms=proposal_delay,
        max_clock_skew_ms=rng.randrange(0, 50),
        empty_proposal_delay_ms=interval,
        idle=tuple(stretches),
        quiet=variant == "quiet",
        payments_per_block=draw_payments_per_block(seed),
        # An idle height, a view change (the view timeout and its round) and the new view's block.
        max_stall_ms=interval + base_timeout + 8 * max_delay + 100,
        bug=bug,
    )


class PaymentFault(enum.Enum):
    """Where ``payment_fault_scenario`` puts its fault, around a payment time of the bond."""

    #: The primary crashes just before it (some COMMITs lost around it as well).
    PRIMARY_CRASH = "primary_crash"
    #: The primary (validator 0, in view 0 until then) is cut off from everyone just before it.
    PRIMARY_CUT_OFF = "primary_cut_off"
    #: Another validator is cut off from everyone across the paying blocks, then catches up.
    BEHIND = "behind"
    #: Another validator crashes just before it, loses its chain data, and resyncs from genesis.
    WIPED = "wiped"
    #: Another validator starts only after the payment and catches up the whole chain.
    LATE_START = "late_start"


VIEW_CHANGE_FAULTS = (PaymentFault.PRIMARY_CRASH, PaymentFault.PRIMARY_CUT_OFF)
CATCH_UP_FAULTS = (PaymentFault.BEHIND, PaymentFault.WIPED, PaymentFault.LATE_START)


def payment_time(seed: int, index: int) -> int:
    """When payment ``index`` of ``seed``'s bond falls (coupons, then the redemption), if the
    treasury issues it before its planned time, as it does in a run that starts well."""
    _, coupons, maturity = schedule(BondPlan.draw(seed).anchor_ms)
    return (*coupons, maturity)[index]


def payment_fault_scenario(
    seed: int,
    *,
    fault: PaymentFault | None = None,
    payment: int | None = None,
    validators: int | None = None,
    bug: str | None = None,
) -> Scenario:
    """A family aimed at the payments the chain makes itself: the network is sound until
    just before a coupon or the redemption of the workload's bond falls due, then the fault
    strikes: the primary fails, so that the paying block comes from the next view (with
    COMMITs lost around it, sometimes after it was prepared in the view before), or another
    validator is out of the way (cut off, wiped, or not yet started) across the paying
    blocks and applies them while catching up. The chain pays two or three holders a block,
    so each payment spans several blocks, and the fault may fall between them. ``fault``
    and ``payment`` (0 and 1 the coupons, 2 the redemption) are drawn unless given."""
    rng = random.Random(f"payment-fault-scenario-{seed}")
    n = validators if validators is not None else rng.choice((4, 7))
    fault = fault if fault is not None else rng.choice(list(PaymentFault))
    drawn = rng.randrange(3)
    due = payment_time(seed, drawn if payment is None else payment)
    start = due - rng.randrange(0, 400)
    down = rng.randrange(1_500, 3_000)
    other = rng.randrange(1, n)
    crashes: tuple[Crash, ...] = ()
    partitions: tuple[Partition, ...] = ()
    late: tuple[tuple[int, int], ...] = ()
    commit_loss = 0.0
    if fault is PaymentFault.PRIMARY_CRASH:
        crashes = (Crash(0, start, down, primary=True),)
        commit_loss = rng.choice((0.0, 0.5))
    elif fault is PaymentFault.PRIMARY_CUT_OFF:
        partitions = (Partition(start, start + down, frozenset({0})),)
    elif fault is PaymentFault.BEHIND:
        partitions = (Partition(start, start + down, frozenset({other})),)
    elif fault is PaymentFault.WIPED:
        crashes = (Crash(other, start, down, wipe=True),)
    else:
        late = ((other, start + down),)
    return Scenario(
        seed=seed,
        validators=n,
        max_delay_ms=rng.randrange(20, 100),
        commit_loss=commit_loss,
        commit_loss_from_ms=start - 200,
        commit_loss_until_ms=start + 400,
        partitions=partitions,
        crashes=crashes,
        late_starts=late,
        # Time for the payment to be made after the fault, over a few blocks.
        heal_at_ms=start + down + 1_500,
        base_timeout_ms=500,
        max_timeout_ms=2_000,
        proposal_delay_ms=rng.randrange(100, 400),
        payments_per_block=rng.choice((2, 3)),
        bug=bug,
    )
