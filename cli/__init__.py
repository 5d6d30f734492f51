"""The ``mura`` command: a wallet and an operator's tool that talks to a node over JSON-RPC.

Output is an aligned table for people, or JSON with ``--json`` for scripts.
The global options (``--rpc``, ``--json``) may come before or after the
command: ``mura --json balance ADDR`` and ``mura balance ADDR --json`` are one.
Every error is one line on stderr and a non-zero exit status:

====  ==========================================================================
exit  meaning
====  ==========================================================================
0     done
1     the node said no: transaction refused (with its rule), not found, or
      its nonce taken by another final transaction while ``--wait`` waited
2     the command line or a local file is wrong: usage, bad address, bad
      amount, asset, height, timeout or nonce, missing, unreadable or wrongly
      encrypted key file (nothing was sent)
3     the node could not be reached, or gave no usable answer, before
      anything was submitted (nothing was sent)
4     submitted, outcome unknown: the transaction may still become final
      (``--wait`` timed out, Ctrl-C, node gone or connection reset after
      submission, or the node dropped it from its mempool: expired, replaced,
      ... while another node may hold it); the message prints its hash and how to check
      (``mura tx HASH``)
130   interrupted (Ctrl-C or SIGTERM) before anything was sent
====  ==========================================================================

Every argument of a command that signs (``send``, ``mint``, ``burn``, ``asset
issue``, ``holder approve|revoke``, ``freeze``, ``unfreeze``, ``bond issue|spend``,
``offering open|subscribe|cancel``, ``trade accept``) is checked before anything
is signed or sent; each takes ``--key``, ``--wait``, ``--timeout`` and
``--nonce`` (see ``submit``).

Amounts are in an asset: whole numbers of its smallest unit (``1250``, in the
asset ``--asset`` names or else the network's default asset), or whole units
written with the asset's id (``12.50NAC``, ``1000JPYT``), which the command
converts with the decimals the node reports. A bare ``12.50`` is refused
rather than guessed. The network's chain id, address prefix and assets come
from the node, so the command works on any Mura network.

The package: ``session`` (errors, exit statuses, the connection, tables),
``inputs`` (reading arguments), ``submit`` (signing, submitting, waiting),
``commands`` (keys, accounts, payments, the chain, nodes), ``assets`` (assets
and their registrars), ``bonds``, ``offerings`` and ``trades`` (municipal bonds,
their offering and trades between holders; a bond's terms file is read by
``bond_terms`` and ``bond_dates``) and ``demo`` (``mura demo bond``).

Set ``MURA_DEBUG=1`` to see the Python traceback of an internal error.
"""

from mura.cli.commands import cli, main

__all__ = ["cli", "main"]
