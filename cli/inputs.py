"""Reading what a person typed: amounts in an asset, asset ids, addresses, hashes, heights,
times, memos and key files. Each reader turns a mistake into a ``CommandError`` with exit
status 2 (nothing was sent), before anything is signed.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from mura.chain.address import decode_address, encode_address, validate_prefix
from mura.chain.assets import MAX_MEMO_BYTES, asset_id_problem, asset_name_problem
from mura.chain.codec import MAX_INT
from mura.chain.errors import InvalidAddress, InvalidKeyFile
from mura.chain.keys import PASSPHRASE_VARIABLE, PUBLIC_KEY_SIZE, SigningKey, exposed_permissions, load_key
from mura.cli.session import EXIT_USAGE, CommandError, Session, quoted
from mura.genesis.format import parse_genesis_time
from mura.rpc.params import MAX_HEIGHT
from mura.rpc.wallet import AmountError, AssetInfo, amount_asset, parse_amount

_HASH = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")
_PUBLIC_KEY_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")

if TYPE_CHECKING:  # click's ParamType is generic only in its newer releases
    _SecondsBase = click.ParamType[float]
    _NonceBase = click.ParamType[int]
else:
    _SecondsBase = _NonceBase = click.ParamType


def read_amount(session: Session, text: str, *, asset: str | None) -> tuple[AssetInfo, int]:
    """The asset an amount is in (its suffix, else ``asset``, else the network's default) and its
    smallest units."""
    status = session.status()
    try:
        info = amount_asset(
            text, session.assets, asset=asset, default=status.get("default_asset"), lookup=session.find_asset
        )
        return info, parse_amount(text, info)
    except AmountError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def read_new_amount(text: str, asset: AssetInfo, what: str, *, minimum: int) -> int:
    """Smallest units of an asset not issued yet (its id and decimals from the command line)."""
    try:
        return parse_amount(text, asset, minimum=minimum)
    except AmountError as error:
        raise CommandError(f"{what}: {error}", EXIT_USAGE) from None


def read_asset_id(text: str) -> str:
    """An asset id as the chain writes it (``NAC``, ``NISHI-2031-01``)."""
    problem = asset_id_problem(text)
    if problem is not None:
        raise CommandError(problem if len(text) <= 64 else f"asset id of {len(text)} characters: {problem}",
                           EXIT_USAGE)
    return text


def read_asset_name(text: str) -> str:
    problem = asset_name_problem(text)
    if problem is not None:
        raise CommandError(f"--name: {problem}", EXIT_USAGE)
    return text


def read_memo(text: str) -> str:
    """A transfer's memo: text of at most ``MAX_MEMO_BYTES`` in UTF-8."""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise CommandError("--memo: not valid text (check the terminal's encoding)", EXIT_USAGE) from None
    if size > MAX_MEMO_BYTES:
        raise CommandError(f"--memo: {size} bytes in UTF-8; a memo holds at most {MAX_MEMO_BYTES}", EXIT_USAGE)
    if not text.isprintable():
        raise CommandError("--memo: printable text only (no line breaks, tabs or terminal escapes)", EXIT_USAGE)
    return text


_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
#: 9999-12-31T23:59:59.999Z: the last time RFC 3339 writes.
LAST_TIME_MS = 253_402_300_799_999
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def read_time(text: str, what: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 UTC time (``2031-01-01T00:00:00Z``), or of a
    duration from now (``30s``, ``15m``, ``2h``, ``90d``)."""
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        timestamp_ms = int(time.time() * 1000) + int(duration.group(1)) * _UNIT_MS[duration.group(2)]
    else:
        try:
            timestamp_ms = parse_genesis_time(text)
        except ValueError as error:
            raise CommandError(
                f"{what}: {error}, or a duration from now such as 30s, 15m, 2h or 90d", EXIT_USAGE
            ) from None
    if timestamp_ms > LAST_TIME_MS:
        raise CommandError(f"{what}: {text} is past the year 9999", EXIT_USAGE)
    return timestamp_ms


def read_future_time(text: str, what: str) -> int:
    """Milliseconds since the epoch of a time (see ``read_time``) that has not passed yet."""
    timestamp_ms = read_time(text, what)
    if timestamp_ms <= time.time() * 1000:
        raise CommandError(f"{what}: {text} has already passed", EXIT_USAGE)
    return timestamp_ms


def read_key(path: str) -> SigningKey:
    """The key in ``path``, asking for its passphrase if it is encrypted; warns (one line) when
    the file is open to other users."""
    try:
        key = load_key(path, passphrase=lambda: _passphrase(path))
    except InvalidKeyFile as error:
        raise CommandError(error.message, EXIT_USAGE) from None
    exposed = exposed_permissions(path)
    if exposed is not None:
        click.echo(f"mura: warning: key file {path} is {exposed}; fix with: chmod 600 {shlex.quote(path)}", err=True)
    return key


def _passphrase(path: str) -> str:
    """An encrypted key file's passphrase: from ``MURA_KEY_PASSPHRASE``, or asked for."""
    if PASSPHRASE_VARIABLE in os.environ:
        return os.environ[PASSPHRASE_VARIABLE]
    try:
        return str(click.prompt(f"Passphrase for {path}", hide_input=_terminal(), err=True))
    except click.Abort:
        raise CommandError(f"key file {path} is encrypted and no passphrase was given "
                           f"(type it when asked, or set {PASSPHRASE_VARIABLE})", EXIT_USAGE) from None


def new_passphrase() -> str:
    """The passphrase for a new key file: from ``MURA_KEY_PASSPHRASE``, or asked for twice."""
    if PASSPHRASE_VARIABLE in os.environ:
        text = os.environ[PASSPHRASE_VARIABLE]
        if not text:
            raise CommandError(f"{PASSPHRASE_VARIABLE} is empty; a passphrase needs at least one character", EXIT_USAGE)
        return text
    try:
        return str(
            click.prompt("Passphrase for the new key", hide_input=_terminal(), confirmation_prompt=True, err=True)
        )
    except click.Abort:
        raise CommandError(f"no passphrase given (type it twice when asked, or set {PASSPHRASE_VARIABLE}); "
                           "no key written", EXIT_USAGE) from None


def _terminal() -> bool:
    """Whether input comes from a terminal: there a passphrase is typed unseen; from a pipe it is
    read as a line (nothing echoes it, and getpass would only warn that it cannot hide it)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_address(text: str, prefix: str) -> bytes:
    if _PUBLIC_KEY_HEX.fullmatch(text):
        address = encode_address(bytes.fromhex(text[-64:]), prefix)
        raise CommandError(f"{text[:10]}...: that is a public key, not an address; its address is {address}",
                           EXIT_USAGE)
    try:
        return decode_address(text, prefix)
    except InvalidAddress as error:
        raise CommandError(f"bad address {quoted(text)}: {error.message}", EXIT_USAGE) from None


def read_hash(text: str, what: str) -> str:
    """A 32-byte hash as the node writes it (``0x`` and lower case), from 64 hex digits with or
    without ``0x``, in either case."""
    match = _HASH.fullmatch(text)
    if match is None:
        raise CommandError(f"{quoted(text)} is not a {what} hash (64 hex digits, with or without 0x)", EXIT_USAGE)
    return "0x" + match.group(1).lower()


def read_block_id(text: str) -> int | str | None:
    """A height (digits), a block hash, or None for ``latest``."""
    if text.lower() == "latest":
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 20 or int(text) > MAX_INT:
            raise CommandError(f"height {quoted(text)} is beyond any chain (at most {MAX_INT})", EXIT_USAGE)
        return int(text)
    if _HASH.fullmatch(text):
        return read_hash(text, "block")
    raise CommandError(f"{quoted(text)} is neither a height, a block hash (64 hex digits) nor 'latest'", EXIT_USAGE)


class PathType(click.Path):
    """click's Path, refusing a NUL (which no file name holds) with a usage error instead of crashing."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self.fail(f"{quoted(value)}: a file name cannot hold a NUL character", param, ctx)
        return super().convert(value, param, ctx)


class Seconds(_SecondsBase):
    """A positive, finite number of seconds, written in plain ASCII."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value)
        try:
            if not text.isascii() or len(text) > 32:
                raise ValueError
            seconds = float(text)
        except ValueError:
            self.fail(f"{quoted(text)} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{quoted(text)}: must be a positive number of seconds", param, ctx)
        return seconds


class Nonce(_NonceBase):
    """A transaction nonce: a whole number from 0 to 2^64 - 1."""

    name = "n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) > MAX_INT:
            self.fail(f"{quoted(text)} is not a nonce (a whole number from 0 to {MAX_INT})", param, ctx)
        return int(text)


class Height(_NonceBase):
    """A block height: a whole number from 0 to 2^63 - 1."""

    name = "height"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_HEIGHT:
            self.fail(f"{quoted(text)} is not a height (a whole number from 0 to {MAX_HEIGHT})", param, ctx)
        return int(text)


def check_prefix(prefix: str) -> None:
    try:
        validate_prefix(prefix)
    except InvalidAddress as error:
        raise CommandError(error.message, EXIT_USAGE) from None


def read_public_key(text: str) -> bytes:
    if not _PUBLIC_KEY_HEX.fullmatch(text):
        raise CommandError(f"a public key is {2 * PUBLIC_KEY_SIZE} hex digits, got {quoted(text)}", EXIT_USAGE)
    return bytes.fromhex(text[-2 * PUBLIC_KEY_SIZE :])
