"""The machine-level faults the campaign uses, where this machine allows them: real packet
loss on one loopback port (iptables), and a process's wall clock moved by libfaketime."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from mura.tests.chaos import clock_skew, packet_loss
from mura.tests.chaos.packet_loss import PacketLoss


def test_a_process_under_the_skew_file_sees_its_wall_clock_moved(tmp_path: Path) -> None:
    if clock_skew.library() is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    assert clock_skew.unavailable_reason(tmp_path) is None


def test_packet_loss_drops_packets_on_one_port_and_tcp_still_delivers_every_byte() -> None:
    reason = packet_loss.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = bytearray()

    def receive() -> None:
        connection, _ = server.accept()
        with connection:
            while data := connection.recv(65536):
                received.extend(data)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    loss = PacketLoss({(0, 1): port, (1, 0): port})
    loss.start()
    try:
        loss.set_loss({(0, 1): 0.3})
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for number in range(300):
                client.sendall(number.to_bytes(2, "big"))
            dropped = _dropped_packets(f"{packet_loss.CHAIN_PREFIX}{os.getpid()}")
        receiver.join(timeout=30)
        assert bytes(received) == b"".join(number.to_bytes(2, "big") for number in range(300))
        assert dropped > 0
    finally:
        loss.stop()
        server.close()
    assert f"{packet_loss.CHAIN_PREFIX}{os.getpid()}" not in subprocess.run(
        ["iptables", "-w", "-S"], capture_output=True, text=True, check=True
    ).stdout


def _dropped_packets(chain: str) -> int:
    """Packets the chain's DROP rules matched so far."""
    listing = subprocess.run(["iptables", "-w", "-L", chain, "-v", "-x", "-n"], capture_output=True, text=True,
                             check=True).stdout
    return sum(int(line.split()[0]) for line in listing.splitlines() if "DROP" in line)
