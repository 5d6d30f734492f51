"""A network's starting point: the genesis file format and its loader
(``genesis.format``), the testnet generator (``genesis.testnet``, also a
command: ``python -m mura.genesis.testnet``) and the shipped example genesis
of the Nishiawakura testnet (``examples/nishiawakura-testnet.json``).

May import ``mura.chain`` (to build the genesis block and check addresses).
Never imports ``consensus``, ``p2p`` or ``rpc``: a genesis file is data every
layer reads, not a layer of its own.
"""

from pathlib import Path


def example_genesis_path() -> Path:
    """The shipped genesis of the Nishiawakura testnet (its private keys were discarded)."""
    return Path(__file__).parent / "examples" / "nishiawakura-testnet.json"
