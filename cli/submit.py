"""Signing, submitting and waiting: what every command that changes the chain shares.

Every argument is checked before anything is signed or sent. ``--wait`` waits as long
as ``--timeout`` says, in as many ``tx_wait`` calls as the node's longest wait
(``rpc.max_wait_seconds``, which the node publishes through ``rpc.discover``) requires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from mura.chain.address import encode_address
from mura.chain.transaction import Body, Burn, Transaction, Transfer
from mura.cli.inputs import Nonce, Seconds, read_key
from mura.cli.session import (
    EXIT_OUTCOME_UNKNOWN,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CommandError,
    Rows,
    Session,
    exit_code_of,
    node_errors,
)
from mura.rpc.client import TRANSACTION_DROPPED, NodeUnreachable, RemoteError, RpcClientError
from mura.rpc.render import render_body
from mura.rpc.wallet import AssetInfo, format_amount, sign_with_next_nonce, sign_with_nonce

#: Extra seconds the HTTP request of ``tx_wait`` may take beyond the wait itself.
_WAIT_MARGIN_SECONDS = 10.0
#: The longest single ``tx_wait`` call when the node does not publish its ceiling: every node
#: accepts 1 s (``rpc.max_wait_seconds`` is a positive whole number), so a longer ``--timeout``
#: becomes more calls rather than a refusal after the transaction was submitted.
_FALLBACK_WAIT_STEP_SECONDS = 1.0
#: How a body's account fields read in a table: a transfer's recipient is "to".
_PARTY_LABELS = {"recipient": "to", "account": "account"}
#: The terms of an issue shown as they are, and their labels.
_ISSUE_LABELS = {"name": "name", "decimals": "decimals", "policy": "policy", "registrar": "registrar",
                 "expiry_time": "expires"}


def body_asset(body: dict[str, Any], session: Session) -> AssetInfo | None:
    """The asset a rendered body's amounts are in: an issue carries its own decimals."""
    if "decimals" in body and "asset" in body:
        return {"id": body["asset"], "name": body.get("name", ""), "decimals": body["decimals"]}
    if "asset" not in body:  # the bond kinds: their amounts are in the bond's settlement asset
        return None
    return session.find_asset(str(body["asset"]))


def show_units(units: int | None, asset: AssetInfo | None, asset_id: str = "") -> str:
    """Smallest units and whole units of the asset; the units and the id when its decimals are unknown."""
    if units is None:
        return "-"
    return format_amount(units, asset) if asset is not None else f"{units} {asset_id}".rstrip()


def transaction_rows(transaction: dict[str, Any], session: Session) -> Rows:
    """A transaction's fields for people, its amounts in both units."""
    body = transaction.get("body", {})
    asset = body_asset(body, session)
    rows: Rows = [("transaction", transaction["hash"]), ("kind", transaction["kind"]), ("from", transaction["sender"])]
    rows += [(label, body[field]) for field, label in _PARTY_LABELS.items() if body.get(field)]
    if "asset" in body:
        rows.append(("asset", body["asset"]))
    for field in ("amount", "supply", "cap"):
        if body.get(field) is not None:
            rows.append((field, show_units(body[field], asset, str(body.get("asset", "")))))
    if "reissuable" in body:
        rows.append(("supply rule", "reissuable" if body["reissuable"] else "fixed"))
    rows += [(label, body[field]) for field, label in _ISSUE_LABELS.items() if body.get(field) is not None]
    if body.get("memo"):
        rows.append(("memo", body["memo"]))
    rows.append(("nonce", transaction["nonce"]))
    if "block_height" in transaction:
        rows.append(("status", f"final in block {transaction['block_height']} at index {transaction['index']}"))
    else:
        rows.append(("status", transaction.get("status", "submitted")))
    return rows


def signing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--key, --wait, --timeout and --nonce, which every signing command takes."""
    for option in (
        click.option("--nonce", type=Nonce(), default=None,
                     help="Sign with nonce N instead of the next one: to replace a pending transaction, "
                     "give its nonce."),
        click.option("--timeout", type=Seconds(), default=30.0, show_default=True,
                     help="Seconds --wait waits at most (any positive number; long waits take several calls)."),
        click.option("--wait", is_flag=True, help="Wait until the transaction is final."),
        click.option("--key", "key_file", required=True, help="Key file of the signing account."),
    ):
        command = option(command)
    return command


def submit(
    session: Session,
    key_file: str,
    make_body: Callable[[dict[str, Any]], Body],
    *,
    wait: bool,
    timeout: float,
    nonce: int | None,
    rows: Callable[[dict[str, Any], Session], Rows] = transaction_rows,
) -> None:
    """Sign a transaction from ``key_file`` (with ``nonce``, or the next one), submit it, and perhaps
    wait for it, showing it as ``rows`` says. Every argument is checked before anything is signed or sent."""
    key = read_key(key_file)
    status = session.status()
    body = make_body(status)
    wait_step = _longest_wait(session) if wait else 0.0
    if nonce is None:
        with node_errors("account_get"):
            transaction = sign_with_next_nonce(session.client, key, body, status)
    else:
        transaction = sign_with_nonce(key, body, status, nonce=nonce)
    transaction_hash = "0x" + transaction.hash.hex()
    shown: dict[str, Any] = {
        "hash": transaction_hash,
        "kind": transaction.kind,
        "sender": encode_address(key.public_key, status["address_prefix"]),
        "nonce": transaction.nonce,
        "body": render_body(body, status["address_prefix"]),
        "status": "submitted",
    }
    with _outcome_unknown_on_failure(session, transaction_hash):
        _send(session, transaction)
        if wait:
            shown = _wait_final(session, transaction, timeout=timeout, step=wait_step)
            shown["status"] = "final"
        session.show(shown, rows(shown, session))


def _send(session: Session, transaction: Transaction) -> None:
    """``tx_submit``; a refusal (nothing admitted) is exit 1, a request that never left is exit 3."""
    try:
        session.client.call("tx_submit", ["0x" + transaction.encoded.hex()])
    except RemoteError as error:
        asset_id = getattr(transaction.body, "asset", None)
        asset = session.find_asset(str(asset_id)) if asset_id else None
        raise CommandError(describe_refusal(error, transaction, asset), exit_code_of(error)) from None
    except NodeUnreachable as error:
        if not error.may_have_arrived:
            raise CommandError(f"{error}; nothing was sent", EXIT_UNREACHABLE) from None
        raise


def describe_refusal(error: RemoteError, transaction: Transaction, asset: AssetInfo | None) -> str:
    """The node's refusal in one line; an overspend is told in the asset's units, naming what is
    pending from the account only when something is."""
    data = error.data if isinstance(error.data, dict) else {}
    rule, balance = data.get("rule"), data.get("balance")
    spend = transaction.body.amount if isinstance(transaction.body, (Transfer, Burn)) else 0
    total = data.get("pending_spend") if rule == "pending_spend_exceeds_balance" else spend
    overspend = rule in ("insufficient_balance", "pending_spend_exceeds_balance")
    if not overspend or not isinstance(balance, int) or not isinstance(total, int) or asset is None:
        return str(error)
    head = f"transaction refused ({rule}): the {transaction.kind} of {format_amount(spend, asset)}"
    if total <= spend:
        return f"{head} exceeds the final balance of {format_amount(balance, asset)}"
    return (f"{head} and {format_amount(total - spend, asset)} already pending from this account exceed the final "
            f"balance of {format_amount(balance, asset)}")


@contextmanager
def _outcome_unknown_on_failure(session: Session, transaction_hash: str) -> Iterator[None]:
    """From the moment ``tx_submit`` may reach the node, any failure but a refusal or a certain
    non-delivery says that the transaction may still become final, and how to check (exit 4)."""
    check = session.check_command("tx", transaction_hash)

    def unknown(reason: str) -> CommandError:
        return CommandError(f"{reason}; transaction {transaction_hash} may have been submitted and may still "
                            f"become final: check with: {check}", EXIT_OUTCOME_UNKNOWN)

    try:
        yield
    except KeyboardInterrupt:
        raise unknown("interrupted") from None
    except RpcClientError as error:
        raise unknown(str(error)) from None


def _longest_wait(session: Session) -> float:
    """The longest ``tx_wait`` the node accepts (its ``rpc.max_wait_seconds``), from ``rpc.discover``;
    the fallback step when it does not say."""
    try:
        document = session.client.call("rpc.discover")
        tx_wait = next(method for method in document["methods"] if method["name"] == "tx_wait")
        schema = next(param["schema"] for param in tx_wait["params"] if param["name"] == "timeout_seconds")
        maximum = schema["maximum"]
    except RemoteError:
        return _FALLBACK_WAIT_STEP_SECONDS
    except RpcClientError as error:
        raise CommandError(f"{error}; nothing was sent", EXIT_UNREACHABLE) from None
    except (KeyError, TypeError, StopIteration):
        return _FALLBACK_WAIT_STEP_SECONDS
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or not 1 <= maximum <= 86_400:
        return _FALLBACK_WAIT_STEP_SECONDS
    return float(maximum)


def _wait_final(session: Session, transaction: Transaction, *, timeout: float, step: float) -> dict[str, Any]:
    """The transaction once final, waiting at most ``timeout`` seconds in ``tx_wait`` calls of at
    most ``step`` seconds each. A drop ends it (see ``describe_drop`` for its exit status); a
    timeout propagates as ``NotFinalYet``."""
    transaction_hash = "0x" + transaction.hash.hex()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotFinalYet(f"not final after {timeout:g} s")
        wait = max(round(min(remaining, step), 3), 0.001)
        try:
            found: dict[str, Any] = session.client.call(
                "tx_wait", [transaction_hash, wait], timeout=wait + _WAIT_MARGIN_SECONDS
            )
            return found
        except RemoteError as error:
            if error.code == TRANSACTION_DROPPED:
                raise CommandError(*describe_drop(session, error, transaction)) from None
            if error.code != -32030:
                raise


class NotFinalYet(RpcClientError):
    """``--wait`` reached its timeout before the transaction was final."""


def describe_drop(session: Session, error: RemoteError, transaction: Transaction) -> tuple[str, int]:
    """The drop in one line, and the exit status: a drop is this node's view, so unless another
    transaction took the nonce for good (``nonce_used``), this one may still become final through
    another node (exit 4, outcome unknown); only a retry with the same nonce is safe."""
    data = error.data if isinstance(error.data, dict) else {}
    rule, why = data.get("rule", "unknown"), data.get("message", "")
    head = f"transaction 0x{transaction.hash.hex()} was dropped by this node ({rule}): {why}".rstrip(": ")
    if rule == "nonce_used":
        return f"{head}; it will not become final", EXIT_REFUSED
    if rule == "replaced" and data.get("replaced_by"):
        replacement = str(data["replaced_by"])
        return (f"{head}; it may still become final if a validator proposed it before the replacement; at most one "
                f"of them can: check with: {session.check_command('tx', replacement)}"), EXIT_OUTCOME_UNKNOWN
    return (f"{head}; it may still become final through another node (check with: "
            f"{session.check_command('tx', '0x' + transaction.hash.hex())}). Retry only with --nonce "
            f"{transaction.nonce} (the same nonce): at most one of them can become final"), EXIT_OUTCOME_UNKNOWN
