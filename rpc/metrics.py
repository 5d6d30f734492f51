"""The node's Prometheus metrics, served as text on GET ``/metrics``.

Each node has its own ``CollectorRegistry`` (never prometheus-client's global
one), so several nodes in one process, as in the tests, keep their figures
apart. Three kinds of series live in it:

- events, counted as they happen: blocks committed (the interval between
  their proposer timestamps), transactions finalized, pending transactions
  dropped by rule, every JSON-RPC call by method with its outcome and
  latency, subscription notifications sent, websockets turned away by limit
  and websockets closed for reading too slowly;
- state, read at scrape time: websockets and subscriptions open on the RPC
  port; and from the node: height, view, view changes
  started, peers connected, validators this node has heard no vote from
  lately, whether the chain is stalled here, and the mempool's size in
  transactions and bytes;
- the process, from prometheus-client's ``ProcessCollector`` (Linux ``/proc``):
  CPU seconds, resident and virtual memory, open and maximum file
  descriptors, start time. (Elsewhere it shows nothing.)

What each series means for an alert is in the README's metrics table.

The ``method`` label is a served method's name, ``unknown`` for any other
name and ``invalid`` for requests that are not JSON-RPC at all, so a client
cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from mura.chain.block import Block

#: The content type of ``exposition()``.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_BLOCK_INTERVAL_BUCKETS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_RPC_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """The node's state at one moment, as the gauges show it."""

    #: Height of the last final block.
    height: int
    #: The PBFT view the node is in.
    view: int
    #: View changes this node has started since it began.
    view_changes_started: int
    #: Peers with a live link.
    peers: int
    #: Other validators this node has taken no valid vote from at the height being
    #: decided nor at the three below it (0 on a healthy network); on a node that follows
    #: without a vote, the validators it has no link to.
    missing_validators: int
    #: Transactions in the mempool.
    mempool_transactions: int
    #: Encoded bytes in the mempool.
    mempool_bytes: int
    #: 1 while the chain makes no progress here (no final block for longer than the idle
    #: interval and two view timeouts, or a view change that does not complete), else 0.
    stalled: int = 0
    #: The highest height known final somewhere minus this node's.
    blocks_behind: int = 0
    #: 1 while this node's key is a validator's of the height in progress, else 0 (it follows).
    voting: int = 1
    #: Final blocks pushed to linked peers that take no part in consensus (observers), and
    #: those dropped because the peer's queue was full.
    final_blocks_pushed: int = 0
    final_blocks_push_dropped: int = 0


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _FiguresCollector:
    """Turns ``NodeFigures`` read at scrape time into metric families."""

    def __init__(self, read: Callable[[], NodeFigures]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._read())

    @staticmethod
    def _families(figures: NodeFigures | None) -> list[Metric]:
        def value(name: str) -> float | None:
            return None if figures is None else float(getattr(figures, name))

        view_changes = CounterMetricFamily(
            "mura_consensus_view_changes", "View changes this node started.", value=value("view_changes_started")
        )
        pushed = CounterMetricFamily(
            "mura_p2p_final_blocks_pushed",
            "Final blocks this node pushed to linked peers that take no part in consensus (observers).",
            value=value("final_blocks_pushed"),
        )
        push_dropped = CounterMetricFamily(
            "mura_p2p_final_blocks_push_dropped",
            "Final blocks not pushed to such a peer because its queue was full (it fetches them).",
            value=value("final_blocks_push_dropped"),
        )
        return [
            _gauge("mura_chain_height", "Height of the last final block.", value("height")),
            pushed,
            push_dropped,
            _gauge("mura_consensus_view", "The PBFT view this node is in.", value("view")),
            view_changes,
            _gauge("mura_p2p_peers_connected", "Peers with a live link.", value("peers")),
            _gauge(
                "mura_consensus_missing_validators",
                "Other validators this node took no valid vote from at the height being decided "
                "nor at the three below it (0 when healthy); on a node that follows without a vote, "
                "the validators it has no link to.",
                value("missing_validators"),
            ),
            _gauge(
                "mura_consensus_stalled",
                "1 while no block becomes final here for longer than the idle interval and two view "
                "timeouts, or a view change does not complete; else 0.",
                value("stalled"),
            ),
            _gauge(
                "mura_chain_blocks_behind",
                "The highest height known final elsewhere (seen voted on, or sent with a valid certificate) "
                "minus this node's.",
                value("blocks_behind"),
            ),
            _gauge(
                "mura_consensus_voting",
                "1 while this node's key is a validator's of the height in progress; 0 while it follows "
                "without a vote (an observer, or a validator not yet added or removed).",
                value("voting"),
            ),
            _gauge("mura_mempool_transactions", "Transactions waiting in the mempool.", value("mempool_transactions")),
            _gauge("mura_mempool_bytes", "Encoded bytes waiting in the mempool.", value("mempool_bytes")),
        ]


class Metrics:
    """One node's registry and the series the node and the RPC server feed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.transactions_finalized = Counter(
            "mura_transactions_finalized", "Transactions in blocks this node committed.", registry=self.registry
        )
        self.blocks_committed = Counter("mura_blocks_committed", "Blocks this node committed.", registry=self.registry)
        self.block_interval = Histogram(
            "mura_block_interval_seconds",
            "Time between a committed block's proposer timestamp and its parent's.",
            buckets=_BLOCK_INTERVAL_BUCKETS,
            registry=self.registry,
        )
        self.rpc_requests = Counter(
            "mura_rpc_requests",
            "JSON-RPC requests answered, by method and outcome (ok or error).",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.rpc_duration = Histogram(
            "mura_rpc_request_duration_seconds",
            "Time to answer one JSON-RPC request, by method.",
            ["method"],
            buckets=_RPC_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.transactions_dropped = Counter(
            "mura_mempool_dropped",
            "Pending transactions this node dropped, by rule (expired, replaced, nonce_used, ...).",
            ["rule"],
            registry=self.registry,
        )
        self.websockets_open = Gauge(
            "mura_rpc_websockets", "Websockets open on the RPC port.", registry=self.registry
        )
        self.subscriptions_open = Gauge(
            "mura_rpc_subscriptions", "Subscriptions open on the RPC port's websockets.", registry=self.registry
        )
        self.notifications_sent = Counter(
            "mura_rpc_notifications_sent", "Subscription notifications sent over websockets.", registry=self.registry
        )
        self.websockets_refused = Counter(
            "mura_rpc_websockets_refused",
            "Websockets turned away, by the limit they met (max_websockets, max_websockets_per_source).",
            ["limit"],
            registry=self.registry,
        )
        self.websockets_given_way = Counter(
            "mura_rpc_websockets_closed_fair_share",
            "Websockets closed (code 1013) to let in one from another address while rpc.max_websockets were "
            "open: each the oldest of the address holding the most.",
            registry=self.registry,
        )
        self.wrong_hosts = Counter(
            "mura_rpc_wrong_host_requests",
            "Requests to the RPC port refused (HTTP 403) because their Host named neither an IP address nor a "
            "name in rpc.allowed_hosts: DNS rebinding attempts, or clients using a name the node is not published "
            "under.",
            registry=self.registry,
        )
        self.slow_websockets_closed = Counter(
            "mura_rpc_websockets_closed_slow",
            "Websockets closed because rpc.websocket_queue notifications waited to be sent on them.",
            registry=self.registry,
        )
        # CPU seconds, memory, file descriptors and start time of this process.
        ProcessCollector(registry=self.registry)
        self._watching = False

    def watch(self, read: Callable[[], NodeFigures]) -> None:
        """Show the node's state, read by ``read`` at every scrape; only once per registry."""
        if self._watching:
            raise RuntimeError("the metrics already watch a node")
        self.registry.register(_FiguresCollector(read))
        self._watching = True

    def watch_websockets(self, *, open_websockets: Callable[[], int], subscriptions: Callable[[], int]) -> None:
        """Show the websockets and subscriptions open, read by the callables at every scrape."""
        self.websockets_open.set_function(open_websockets)
        self.subscriptions_open.set_function(subscriptions)

    def observe_block(self, block: Block, parent_timestamp_ms: int) -> None:
        """Count a committed block, its transactions and its interval after its parent."""
        self.blocks_committed.inc()
        self.transactions_finalized.inc(len(block.transactions))
        self.block_interval.observe(max(0, block.header.timestamp_ms - parent_timestamp_ms) / 1000)

    def observe_drop(self, rule: str) -> None:
        """Count one pending transaction dropped for ``rule`` (a chain rule name: a bounded set)."""
        self.transactions_dropped.labels(rule).inc()

    def observe_call(self, method: str, seconds: float, *, ok: bool) -> None:
        """Count one answered request; ``method`` must come from a bounded set (see the module)."""
        self.rpc_requests.labels(method, "ok" if ok else "error").inc()
        self.rpc_duration.labels(method).observe(seconds)

    def exposition(self) -> bytes:
        """Every series in the Prometheus text format."""
        return generate_latest(self.registry)
