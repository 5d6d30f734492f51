"""``python -m mura.tests.node.tampering_node --config ...``: a validator that is honest in
everything but the state snapshots it serves, where one value of every chunk is altered.

The process tests of state sync run it as the peer a joining node must catch lying.
"""

from __future__ import annotations

from mura import node
from mura.chain.store import StateView

_load_entries = StateView.load_entries


def _tampered(view: StateView, start: bytes, count: int) -> list[tuple[bytes, bytes]]:
    entries = _load_entries(view, start, count)
    key, value = entries[0]
    entries[0] = (key, value[:-1] + bytes([value[-1] ^ 1]))
    return entries


if __name__ == "__main__":
    setattr(StateView, "load_entries", _tampered)  # noqa: B010 (a method replaced on purpose)
    raise SystemExit(node.main())
