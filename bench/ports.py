"""Free ports for tests and tools that start real node processes."""

from __future__ import annotations

import random
import socket


class NoFreePorts(RuntimeError):
    """No run of free ports was found below the kernel's ephemeral range."""


def free_port_range(count: int) -> int:
    """A base port such that ``base .. base + count - 1`` are free on 127.0.0.1 now.

    Searched from a random start below the kernel's ephemeral ports (32768 on), so that
    neither outgoing connections nor clusters started at the same moment by other
    processes are likely to take them in the instant before the nodes bind them.
    """
    chooser = random.Random()
    for _ in range(1000):
        base = chooser.randrange(10_000, 32_768 - count)
        listeners = []
        try:
            for port in range(base, base + count):
                listener = socket.socket()
                listeners.append(listener)
                listener.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for listener in listeners:
                listener.close()
    raise NoFreePorts("no free port range below 32768")
