"""Authenticated, encrypted websocket links between nodes (aiohttp): the
handshake and the link keys, message framing, what a peer may cost before it
is proven, reconnection with backoff, misbehaviour accounting and bans,
rate-limited logs, and transaction gossip.

May import ``mura.chain`` and ``mura.consensus`` (messages). Owns no ledger
or consensus rules: it moves verified frames between nodes.
"""
