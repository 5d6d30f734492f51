"""Whom the node links to, following the validator set as it changes.

The network admits the validators of the next height to decide and of the one
after it (a change approved in block h decides heights from h + 2, so after
block h both are known for certain), plus the observers the config names
(``p2p.observers``). It dials each of those validators but itself, at the
address the chain's state records for it, or at the address ``p2p.peers`` gives
for its key; a ``p2p.peers`` entry for an admitted key that is no validator (an
observer) is dialed too, and one for a key not admitted is left out.

After every final block the node asks again (``PeerSet.follow``): when the
answer differs from the last one, the network admits and dials the new peers,
and closes its links to keys no longer admitted (a removed validator that is a
configured observer here stays linked, as an observer). Nothing restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from mura.chain.governance import ValidatorRecord
from mura.p2p.link import short_key
from mura.p2p.network import Network
from mura.p2p.settings import PeerAddress

LOG = logging.getLogger("mura.node")


@dataclass(frozen=True, slots=True)
class Peers:
    """Whom a node admits and whom it dials."""

    admitted: frozenset[bytes]
    dialed: tuple[PeerAddress, ...]


class PeerSet:
    """The node's peers for the validator sets around its final height (see the module
    docstring); ``validators_at(height)`` gives the set that decides ``height``."""

    def __init__(
        self,
        *,
        own_key: bytes,
        own_address: str,
        observers: Collection[bytes],
        overrides: Sequence[PeerAddress],
        validators_at: Callable[[int], Sequence[ValidatorRecord]],
    ) -> None:
        self.own_key = own_key
        #: This node's ``p2p.listen``: a key recorded at it (this node's next key, after a
        #: rotation that keeps the address) is this node, not a peer.
        self.own_address = own_address
        self.observers = frozenset(observers)
        self.overrides = {address.public_key: address for address in overrides}
        self.validators_at = validators_at
        #: What ``follow`` last gave the network.
        self.current: Peers | None = None

    def at(self, final_height: int) -> Peers:
        """The peers of a node whose last final block is at ``final_height``."""
        validators: dict[bytes, ValidatorRecord] = {}
        for height in (final_height + 1, final_height + 2):
            for validator in self.validators_at(height):
                validators[validator.public_key] = validator
        admitted = frozenset(validators) | self.observers
        dialed: dict[bytes, PeerAddress] = {}
        for key, validator in validators.items():
            address = self.overrides.get(key) or _peer_address(validator)
            if key != self.own_key and address is not None and validator.address != self.own_address:
                dialed[key] = address
        for key, address in self.overrides.items():
            if key in admitted and key != self.own_key:
                dialed.setdefault(key, address)
        return Peers(admitted - {self.own_key}, tuple(dialed.values()))

    def follow(self, network: Network, final_height: int) -> bool:
        """Give the network the peers for ``final_height`` when they changed; True if they did."""
        peers = self.at(final_height)
        previous = self.current
        if peers == previous:
            return False
        self.current = peers
        network.set_peers(admitted=peers.admitted, peers=peers.dialed)
        if previous is not None:
            _log_change(previous, peers, final_height)
        return True


def _peer_address(validator: ValidatorRecord) -> PeerAddress | None:
    """Where the chain records ``validator``'s peer endpoint (None: nowhere it can be dialed,
    as in a simulated network; governance refuses such an address for a real one)."""
    host, _, port = validator.address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return PeerAddress(validator.public_key, host, int(port))


def _log_change(before: Peers, after: Peers, final_height: int) -> None:
    added = sorted(short_key(key) for key in after.admitted - before.admitted)
    dropped = sorted(short_key(key) for key in before.admitted - after.admitted)
    moved = sorted(
        short_key(address.public_key) for address in set(after.dialed) - set(before.dialed)
        if address.public_key in before.admitted
    )
    LOG.info(
        "the validator set changes after height %d: peers admitted now %s; dropped %s; dialed at a new address %s",
        final_height, ", ".join(added) or "none", ", ".join(dropped) or "none", ", ".join(moved) or "none",
        extra={"event": "peers_changed", "height": final_height, "added": added, "dropped": dropped},
    )
