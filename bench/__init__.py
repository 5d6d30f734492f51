"""Mura's benchmarks: tools that print figures, never tests (nothing here asserts a speed).

Each entry point runs with ``python -m``:

* ``mura.bench.ledger``: the ledger alone, in one process: Ed25519 verifications, ``apply_block``,
  commits to LevelDB and the state-root update (``make bench`` runs it first).
* ``mura.bench.links``: the peer links alone: frame encryption, one handshake, and how soon a
  link is back after its peer was down or cut off.
* ``mura.bench.network``: the network benchmark behind ``make bench`` and ``make bench-full``.
  It runs fresh validator networks as separate processes on loopback, drives them only through
  JSON-RPC from separate load and query processes, watches finality from the outside, and reports
  throughput, finality latency, catch-up speed, query rate and memory as a table and a JSON file.
  A lost transaction (accepted, never final) fails the run. It imports ``mura`` only as a client
  would (keys, transactions, addresses, the testnet generator); it never imports the node, p2p or
  rpc internals.
* ``mura.bench.idle``: what an idle chain costs on disk, and how fast a wiped validator resyncs it.

The network benchmark's parts: ``validators`` (a testnet of validator processes on free ports from
``ports``), ``workload`` (accounts and transfers signed ahead of time), ``load`` and ``queries`` (the
separate processes that submit and query), ``watcher`` (finality seen from outside), ``phases`` (the
measurements), ``report`` (the table) and ``rpc`` (a small JSON-RPC client, also used by the chaos and
attack campaigns under ``tests/``).
"""
