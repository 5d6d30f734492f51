"""Fixtures for the ``mura`` command's tests: one real single-validator node process for
the whole package, and a runner that invokes the command in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mura.cli import cli
from mura.tests.node.cluster import Cluster


@dataclass
class Mura:
    """Runs ``mura --rpc URL ...`` in-process, as a user would type it."""

    url: str
    treasury_key: Path
    #: The key of the bank, which issues JPYT.
    bank_key: Path

    def __call__(self, *arguments: str, rpc: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--rpc", rpc or self.url, *arguments])

    def json(self, *arguments: str) -> Any:
        """The ``--json`` output of a command that must succeed."""
        result = self("--json", *arguments)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def balance(self, address: str, asset: str = "NAC") -> int:
        """The final balance of one asset, as ``mura balance`` shows it (0 when not held)."""
        balances = self.json("balance", address)["balances"]
        return next((int(item["balance"]) for item in balances if item["asset"] == asset), 0)


@pytest.fixture(scope="package")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One validator, a real ``python -m mura.node`` process, shared by the package's tests."""
    cluster = Cluster(tmp_path_factory.mktemp("cli") / "testnet", validators=1)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def mura(node: Cluster) -> Mura:
    keys = node.directory / "keys"
    return Mura(f"http://127.0.0.1:{node.rpc_ports[0]}", keys / "treasury.key", keys / "bank.key")
