"""PBFT consensus as a pure state machine: messages, quorums, the replica and
view change.

Sans-I/O: messages and the current time go in, actions come out. May import
``mura.chain`` (types only). Never imports asyncio, aiohttp, plyvel, time or
random: the node and the simulator drive the same replica code.
"""
