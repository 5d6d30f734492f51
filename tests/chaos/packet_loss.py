"""Real packet loss on the proxy's loopback ports, per directed link, with iptables.

Dropping bytes inside the proxy would corrupt a TCP stream; dropping packets
lets the kernel's TCP do what it does on a lossy route: retransmit after a
timeout (at least 200 ms on loopback, doubling when a retransmission is lost
too), holding everything behind the lost segment meanwhile.

The i->j bytes of a link cross the machine's OUTPUT chain exactly once on
their way through the proxy: into the proxy's port for i->j when i dialed
(destination port P(i, j)), or out of the proxy's port for j->i when j dialed
(source port P(j, i)). So one rule per port and direction drops i->j packets,
ACKs included, with the link's probability, and nothing else on the machine is
touched. Rules live in a chain of their own, named after this process, which
``stop()`` removes; a chain left by a process that died is removed at the next
``start()``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

Pair = tuple[int, int]

#: Chains this module creates are named PREFIX + the owning process id.
CHAIN_PREFIX = "MURA_CHAOS_"


class PacketLossUnavailable(Exception):
    """iptables is missing or not permitted here."""


def _iptables(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *arguments], capture_output=True, text=True, check=check, timeout=30)


def unavailable_reason() -> str | None:
    """None when iptables can drop loopback packets at random here; otherwise why not."""
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    probe = f"{CHAIN_PREFIX}PROBE{os.getpid()}"
    try:
        _iptables("-N", probe)
        try:
            _iptables("-A", probe, "-p", "tcp", "--dport", "9", "-m", "statistic", "--mode", "random",
                      "--probability", "0.5", "-j", "DROP")
        finally:
            _iptables("-F", probe, check=False)
            _iptables("-X", probe, check=False)
    except subprocess.CalledProcessError as error:
        return f"iptables is not permitted here: {error.stderr.strip() or error}"
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"iptables does not run here: {error}"
    return None


class PacketLoss:
    """Loss rules for the links whose proxy ports are ``ports``; ``start()``, then ``set_loss``."""

    def __init__(self, ports: Mapping[Pair, int]) -> None:
        self._ports = dict(ports)
        self._chain = f"{CHAIN_PREFIX}{os.getpid()}"
        self._started = False

    def start(self) -> None:
        """Create this process's chain and send the machine's outgoing TCP through it; idempotent."""
        if self._started:
            return
        remove_stale_chains()
        _iptables("-N", self._chain)
        _iptables("-I", "OUTPUT", "-p", "tcp", "-j", self._chain)
        self._started = True

    def set_loss(self, losses: Mapping[Pair, float]) -> None:
        """Drop each listed directed link's packets with its probability; the others lose none."""
        if not self._started:
            raise RuntimeError("PacketLoss.start() first")
        _iptables("-F", self._chain)
        for (sender, receiver), probability in losses.items():
            if probability <= 0:
                continue
            for match in self._matches(sender, receiver):
                _iptables("-A", self._chain, "-p", "tcp", *match, "-m", "statistic", "--mode", "random",
                          "--probability", f"{probability:.4f}", "-j", "DROP")

    def _matches(self, sender: int, receiver: int) -> Sequence[Sequence[str]]:
        return [("--dport", str(self._ports[(sender, receiver)])), ("--sport", str(self._ports[(receiver, sender)]))]

    def clear(self) -> None:
        if self._started:
            _iptables("-F", self._chain)

    def stop(self) -> None:
        """Remove the rules and the chain; idempotent."""
        if not self._started:
            return
        self._started = False
        _remove_chain(self._chain)


def _remove_chain(chain: str) -> None:
    while _iptables("-D", "OUTPUT", "-p", "tcp", "-j", chain, check=False).returncode == 0:
        pass
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)


def remove_stale_chains() -> None:
    """Remove chains of this module whose owning process is gone."""
    listing = _iptables("-S", check=False).stdout
    for pid in set(re.findall(rf"-N {CHAIN_PREFIX}(\d+)\b", listing)):
        if not os.path.exists(f"/proc/{pid}"):
            _remove_chain(f"{CHAIN_PREFIX}{pid}")
