"""The network benchmark behind ``make bench``: ``python -m mura.tests.bench.network``.

It runs fresh validator networks as separate processes on loopback, drives them
only through JSON-RPC from separate load and query processes, watches
finality from the outside, and reports throughput, finality latency, catch-up
speed, query rate and memory as a table and a JSON file. Figures, not
pass/fail; but a lost transaction fails the run.

It imports ``mura`` only as a client would (keys, transactions, addresses,
the testnet generator); it never imports the node, p2p or rpc internals.
"""
