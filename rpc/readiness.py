"""Readiness: whether a node should be sent traffic, as GET ``/ready`` answers it.

A node is ready when it is connected to at least ``min_peers`` peers and is
at most ``max_behind`` blocks behind the highest final height it knows of.
Both thresholds have defaults the node chooses and may be overridden per
probe with query parameters (``/ready?min_peers=3&max_behind=0``), so a load
balancer and an operator can ask different questions of one node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

#: Largest value a query parameter may take; bounds the numbers in the answer.
_MAX_THRESHOLD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SyncFacts:
    """What readiness is judged on, read from the node at the moment of the probe."""

    #: Validators of the height in progress or the next with a live link.
    peers: int
    #: Height of the last final block.
    height: int
    #: The highest final height the node knows of (its own or one a peer has).
    highest_known_height: int

    @property
    def blocks_behind(self) -> int:
        return max(0, self.highest_known_height - self.height)


@dataclass(frozen=True, slots=True)
class ReadinessPolicy:
    """The thresholds a node must meet to be ready."""

    #: Fewest connected peers.
    min_peers: int = 1
    #: Most blocks behind the highest known height.
    max_behind: int = 2

    def __post_init__(self) -> None:
        if self.min_peers < 0 or self.max_behind < 0:
            raise ValueError("readiness thresholds cannot be negative")

    def with_query(self, query: Mapping[str, str]) -> ReadinessPolicy:
        """These thresholds with any given as query parameters; ``ValueError`` names a bad one."""
        unknown = sorted(set(query) - {"min_peers", "max_behind"})
        if unknown:
            raise ValueError(f"unknown query parameter {unknown[0]!r}; /ready takes min_peers and max_behind")
        overrides = {name: _threshold(name, text) for name, text in query.items()}
        return replace(self, **overrides)


def _threshold(name: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > _MAX_THRESHOLD:
        raise ValueError(f"query parameter {name} must be a whole number from 0 to {_MAX_THRESHOLD}, got {text!r}")
    return int(text)


def assess(facts: SyncFacts, policy: ReadinessPolicy) -> tuple[bool, dict[str, Any]]:
    """Whether the node is ready, and the JSON body that says so and, if not, why."""
    reasons = []
    if facts.peers < policy.min_peers:
        reasons.append(f"connected to {facts.peers} validators, needs at least {policy.min_peers}")
    if facts.blocks_behind > policy.max_behind:
        reasons.append(
            f"{facts.blocks_behind} blocks behind height {facts.highest_known_height}, "
            f"may be at most {policy.max_behind}"
        )
    body: dict[str, Any] = {
        "status": "not_ready" if reasons else "ready",
        "peers": facts.peers,
        "min_peers": policy.min_peers,
        "height": facts.height,
        "highest_known_height": facts.highest_known_height,
        "blocks_behind": facts.blocks_behind,
        "max_behind": policy.max_behind,
    }
    if reasons:
        body["reasons"] = reasons
    return not reasons, body
