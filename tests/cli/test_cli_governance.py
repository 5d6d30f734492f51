"""``mura validator list|proposals|propose|approve`` and ``mura issuer grant|revoke`` against the
package's real node process. Its one validator is a quorum alone, so each proposal is approved
in the block that carries it. The node is shared: these tests never change its validator set
(that would leave it without a quorum), only the issuer role of accounts of their own."""

from __future__ import annotations

from pathlib import Path

from mura.cli.session import EXIT_REFUSED, EXIT_USAGE
from mura.tests.node.cluster import Cluster

from .conftest import Mura
from .test_cli import assert_one_line_error
from .test_cli_assets import new_account, rows_of


def validator_key(node: Cluster) -> str:
    return str(node.directory / "keys" / f"{node.layout.genesis.validators[0].name}.key")


def test_validator_list(mura: Mura, node: Cluster) -> None:
    listed = mura.json("validator", "list")
    (only,) = listed["validators"]
    genesis = node.layout.genesis.validators[0]
    assert (only["name"], only["public_key"], only["peer_address"]) == (
        genesis.name, "0x" + genesis.public_key.hex(), genesis.peer_address,
    )  # fmt: skip
    assert listed["quorum"] == 1 and listed["height"] >= 1
    shown = mura("validator", "list", "--height", "1")
    assert shown.exit_code == 0, shown.stderr
    assert genesis.name in shown.stdout and "quorum" in shown.stdout


def test_issuer_grant_and_revoke_by_a_validator(mura: Mura, node: Cluster, tmp_path: Path) -> None:
    _, address = new_account(mura, tmp_path, "new-issuer")
    granted = mura.json("issuer", "grant", address, "--key", validator_key(node), "--wait")
    assert (granted["kind"], granted["status"]) == ("propose", "final")
    assert granted["body"]["change"]["kind"] == "grant_issuer" and granted["body"]["change"]["account"] == address
    approved = mura.json("validator", "proposals", "--status", "approved", "--limit", "1000")["proposals"]
    proposal = next(item for item in approved if item["change"].get("account") == address)
    assert proposal["activation_height"] == granted["block_height"] + 2
    revoked = mura("issuer", "revoke", address, "--key", validator_key(node), "--wait")
    assert revoked.exit_code == 0, revoked.stderr
    rows = rows_of(revoked.stdout.split("\n\n")[0])
    assert rows["change"] == "revoke_issuer" and rows["account"] == address and rows["kind"] == "propose"
    table = mura("validator", "proposals")
    assert table.exit_code == 0 and "grant issuer" in table.stdout


def test_governance_refusals(mura: Mura, node: Cluster, tmp_path: Path) -> None:
    """Each a single line: the node's rule, or what is wrong with the command line (nothing sent)."""
    _, address = new_account(mura, tmp_path, "someone")
    own = "0x" + node.layout.genesis.validators[0].public_key.hex()
    key = validator_key(node)
    assert_one_line_error(
        mura("issuer", "grant", address, "--key", str(mura.treasury_key)), EXIT_REFUSED, "not_a_validator"
    )
    assert_one_line_error(mura("validator", "propose", "remove", own, "--key", key), EXIT_REFUSED, "validator_count")
    assert_one_line_error(mura("validator", "approve", "999999", "--key", key), EXIT_REFUSED, "unknown_proposal")
    assert_one_line_error(
        mura("validator", "propose", "add", own, "--name", "Village Office", "--peer-address", "h:1", "--key", key),
        EXIT_USAGE,
        "--name: a validator's name is 1 to 64 lowercase letters",
    )
    assert_one_line_error(
        mura("validator", "propose", "add", "abc", "--name", "x", "--peer-address", "h:1", "--key", key),
        EXIT_USAGE,
        "PUBLIC_KEY: bad address",
    )
    assert_one_line_error(
        mura("validator", "propose", "add", own, "--name", "x", "--peer-address", "nowhere", "--key", key),
        EXIT_USAGE,
        "--peer-address: a peer address is host:port",
    )
    assert_one_line_error(mura("validator", "propose", "replace", own, own, "--key", key), EXIT_USAGE, "the same key")
    failed = mura("validator", "list", "--height", "999999999")
    assert failed.exit_code != 0 and "Validator set not known" in failed.stderr and "Traceback" not in failed.stderr
