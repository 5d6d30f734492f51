"""The family of runs whose validator set changes, each change mixed with a fault.

- ``GROW``: four validators become seven, one added at a time, while messages
  are lost, duplicated and delayed and a validator may crash.
- ``SHRINK``: seven become four, one removed at a time (the removed keep
  running, as followers).
- ``REMOVE_CRASHED``: a validator crashes and stays down; the others remove it,
  and it comes back (at healing) as a follower that must catch up.
- ``ROTATE_PRIMARY``: the key of the validator that leads view 0 is replaced by
  a joiner's while that primary crashes, so the change takes effect in the
  middle of a view change; the old key's node then follows.
- ``ADD_DURING_PARTITION``: a validator is added while a partition cuts off a
  validator (or the joiner itself) for a while.

After healing, every node (the removed and the joined included) must reach new
heights, and every certificate is checked against the set of its height.
"""

from __future__ import annotations

import enum
import random
from dataclasses import replace

from mura.sim.reconfiguration import ChangeKind, Reconfiguration
from mura.sim.scenario import Crash, Partition, Scenario


class ReconfigurationFault(enum.Enum):
    GROW = "grow"
    SHRINK = "shrink"
    REMOVE_CRASHED = "remove_crashed"
    ROTATE_PRIMARY = "rotate_primary"
    ADD_DURING_PARTITION = "add_during_partition"


#: Time after a change's proposal for it to be approved and take effect, on a sound network.
CHANGE_ROOM_MS = 1_500


def reconfiguration_scenario(
    seed: int, *, fault: ReconfigurationFault | None = None, bug: str | None = None
) -> Scenario:
    """The run of ``seed`` in this family (``fault`` drawn unless given)."""
    rng = random.Random(f"reconfiguration-scenario-{seed}")
    fault = fault if fault is not None else rng.choice(list(ReconfigurationFault))
    start = rng.randrange(300, 1_500)
    base = Scenario(
        seed=seed,
        validators=4,
        min_delay_ms=rng.randrange(1, 10),
        max_delay_ms=rng.randrange(20, 100),
        base_timeout_ms=500,
        max_timeout_ms=2_000,
        proposal_delay_ms=rng.randrange(50, 200),
        max_clock_skew_ms=rng.randrange(0, 30),
        bug=bug,
    )
    if fault is ReconfigurationFault.GROW:
        changes = tuple(Reconfiguration(start, ChangeKind.ADD, member) for member in (4, 5, 6))
        crashes = (Crash(rng.randrange(1, 4), start + rng.randrange(0, 3_000), rng.randrange(200, 1_500)),)
        # New validators' operators start them when they like: some only as their change is approved.
        late_at = rng.randrange(start, start + 3 * CHANGE_ROOM_MS)
        late = tuple((node, late_at) for node in (4, 5, 6)) if rng.random() < 0.5 else ()
        return replace(
            base, validators=4, joiners=3, reconfigurations=changes, crashes=crashes[: rng.randrange(2)],
            late_starts=late,
            drop_rate=rng.choice((0.0, 0.02)), duplicate_rate=rng.choice((0.0, 0.1)),
            heal_at_ms=start + 3 * CHANGE_ROOM_MS + 2_000,
        )  # fmt: skip
    if fault is ReconfigurationFault.SHRINK:
        removed = rng.sample(range(7), 3)
        changes = tuple(Reconfiguration(start, ChangeKind.REMOVE, member) for member in removed)
        return replace(
            base, validators=7, reconfigurations=changes,
            drop_rate=rng.choice((0.0, 0.02)), duplicate_rate=rng.choice((0.0, 0.1)),
            heal_at_ms=start + 3 * CHANGE_ROOM_MS + 2_000,
        )  # fmt: skip
    if fault is ReconfigurationFault.REMOVE_CRASHED:
        n = rng.choice((4, 7))
        crashed = rng.randrange(n)
        heal_at = start + CHANGE_ROOM_MS + 4_000
        crash = Crash(crashed, start, heal_at + 1_000, wipe=rng.random() < 0.3)
        changes = (Reconfiguration(start + rng.randrange(200, 1_000), ChangeKind.REMOVE, crashed),)
        return replace(
            base, validators=n, reconfigurations=changes, crashes=(crash,),
            duplicate_rate=rng.choice((0.0, 0.1)), heal_at_ms=heal_at,
        )  # fmt: skip
    if fault is ReconfigurationFault.ROTATE_PRIMARY:
        changes = (Reconfiguration(start, ChangeKind.ROTATE, 0, successor=4),)
        crash = Crash(0, start + rng.randrange(0, 400), rng.randrange(500, 2_000), primary=True)
        late = ((4, rng.randrange(start, start + CHANGE_ROOM_MS)),) if rng.random() < 0.5 else ()
        return replace(
            base, validators=4, joiners=1, reconfigurations=changes, crashes=(crash,), late_starts=late,
            commit_loss=rng.choice((0.0, 0.3)), commit_loss_from_ms=start, commit_loss_until_ms=start + 1_000,
            heal_at_ms=start + CHANGE_ROOM_MS + 4_000,
        )  # fmt: skip
    cut_off = rng.choice((rng.randrange(4), 4))
    changes = (Reconfiguration(start, ChangeKind.ADD, 4),)
    cut_from, cut_until = max(0, start - rng.randrange(0, 300)), start + rng.randrange(1_000, 3_000)
    partition = Partition(cut_from, cut_until, frozenset({cut_off}))
    return replace(
        base, validators=4, joiners=1, reconfigurations=changes, partitions=(partition,),
        drop_rate=rng.choice((0.0, 0.02)), heal_at_ms=partition.end_ms + CHANGE_ROOM_MS + 1_000,
    )  # fmt: skip
