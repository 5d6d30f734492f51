"""Mura: a permissioned blockchain node for regional currencies and municipal bonds.

The repository root is the ``mura`` package. Each top-level folder owns one
concern (see each package's docstring): ``chain`` the ledger, ``genesis`` the
network's starting point.
"""

__version__ = "0.1.0"
