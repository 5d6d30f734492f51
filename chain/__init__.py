"""The ledger: wire types, canonical codec, keys and addresses, the state
transition, the LevelDB store and the mempool.

May import the standard library, cryptography, msgpack and (in ``store`` only)
plyvel. Never imports aiohttp, ``consensus`` or ``p2p``.
"""
