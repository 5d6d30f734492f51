"""The watch on sends in progress (rpc/connections.py), over real sockets: a client that takes
nothing is cut off, whichever event loop the watch meets it in."""

from __future__ import annotations

import asyncio

from mura.rpc.connections import SendWatch

WINDOW = 0.2
DEADLINE = 10.0


async def send_to_a_client_that_never_reads(watch: SendWatch, size: int) -> bool:
    """Send ``size`` bytes to a peer that reads nothing, under ``watch``; whether the send was cut off."""
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with watch.sending(writer.transport) as sending:
            writer.write(b"x" * size)
            await asyncio.wait_for(writer.drain(), DEADLINE)
        return sending.cut_off
    finally:
        writer.transport.abort()
        server.close()


def test_a_send_the_client_takes_nothing_of_is_cut_off_in_each_event_loop() -> None:
    """A server started again in a new event loop keeps its watch: a loop that ended with the
    watch's timer set does not keep the next loop's sends from being looked at."""
    watch = SendWatch(WINDOW)
    assert not asyncio.run(send_to_a_client_that_never_reads(watch, 5)), "5 bytes fit in any buffer"
    assert asyncio.run(send_to_a_client_that_never_reads(watch, 16 * 1024 * 1024))


async def test_a_send_taken_at_once_is_not_watched_afterwards() -> None:
    watch = SendWatch(WINDOW)
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        with watch.sending(writer.transport) as sending:
            writer.write(b"small")
            await writer.drain()
        assert not sending.cut_off
        assert not watch._sends
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while watch._timer is not None and loop.time() < deadline:
            await asyncio.sleep(WINDOW / 4)
        assert watch._timer is None, "the timer runs on with nothing to watch"
    finally:
        writer.transport.abort()
        server.close()
