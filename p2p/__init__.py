"""Authenticated websocket links between nodes (aiohttp): the handshake,
message framing, reconnection with backoff, misbehaviour accounting and
transaction gossip.

May import ``mura.chain`` and ``mura.consensus`` (messages). Owns no ledger
or consensus rules: it moves verified frames between nodes.
"""
