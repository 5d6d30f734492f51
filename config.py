"""The node's configuration: every setting with its type, default and meaning, read
from a TOML file and the command line, and checked before anything starts.

A setting is written ``p2p.listen`` in the file and ``--p2p-listen`` on the command
line; a flag overrides the file, the file overrides the default. The first problem
found raises ``ConfigError`` with a message that names the setting.
"""

from __future__ import annotations

import argparse
import errno
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from mura.consensus.messages import MAX_MESSAGE_BYTES
from mura.holders import address_in_use, format_address, port_in_use_message
from mura.p2p.settings import PeerAddress
from mura.rpc.cors import origin_problem
from mura.rpc.hosts import host_name_problem


class ConfigError(Exception):
    """A configuration the node cannot start with; the message names the field."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration field: its TOML path, type, default and meaning."""

    #: Dotted TOML path, e.g. ``p2p.listen``; the command-line flag is ``--p2p-listen``.
    path: str
    #: ``str``, ``int``, ``bool``, or ``list`` (of strings).
    kind: type
    default: Any
    help: str
    #: Further check on the value; returns a problem or None.
    check: Callable[[Any], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.path.replace(".", "-").replace("_", "-")


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be positive"


def _host_port(value: Any) -> str | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return "must be host:port with a port from 0 to 65535"
    return None


def _public_keys(value: Any) -> str | None:
    for text in value:
        try:
            if len(bytes.fromhex(text)) == 32:
                continue
        except ValueError:
            pass
        return f"{text!r} is not a public key (64 hex digits)"
    return None


def _choice(*options: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in options else f"must be one of {', '.join(options)}"


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", str, "data", "directory of the node's LevelDB (relative to the config file)"),
    Setting(
        "role", str, "validator",
        "validator: votes while its key is in the validator set of the height being decided, and follows "
        "without a vote until it is; observer: never votes, refuses to start with a key of the current set",
        _choice("validator", "observer"),
    ),
    Setting(
        "key_file", str, "node.key",
        "the node's key file (relative to the config file): a validator's signing key, or an observer's peer identity",
    ),
    Setting(
        "vote_record", str, "",
        "directory of the validator's vote record, kept apart from data_dir so that wiping the chain's "
        "data never lets the validator sign twice; empty: beside key_file, as <key name>.votes",
    ),
    Setting("genesis_file", str, "genesis.json", "the network's genesis file (relative to the config file)"),
    Setting("p2p.listen", str, "127.0.0.1:9700", "address peers connect to", _host_port),
    Setting(
        "p2p.peers", list, [],
        "peers to dial as KEYHEX@host:port; empty: every other validator of the current set, at the address "
        "the chain's state records for it (a validator listed here is dialed at the address given instead)",
    ),
    Setting(
        "p2p.observers", list, [],
        "public keys (hex) of observer nodes admitted as peers besides the validators; a validator pushes each "
        "final block to the observers linked to it", _public_keys,
    ),
    Setting(
        "p2p.max_frame_bytes", int, 10 * 1024 * 1024,
        "largest peer frame accepted (the largest message is a block of at most 8 MiB with the votes "
        "around it; a frame costs a few times its size in memory while it is read)",
        lambda value: None if value >= MAX_MESSAGE_BYTES + 4096 else f"must be at least {MAX_MESSAGE_BYTES + 4096}",
    ),
    Setting(
        "p2p.max_pending_handshakes", int, 16,
        "incoming peer connections that may be in their handshake at once (some kept for known peers)", _positive,
    ),
    Setting(
        "p2p.max_handshakes_per_source", int, 4,
        "of those, from one address (a known peer's address gets one more per validator or observer "
        "configured or seen there)", _positive,
    ),
    Setting(
        "p2p.max_connections_per_source", int, 64,
        "open connections to the peer port from one address (an IPv6 address counts as its /64)", _positive,
    ),
    Setting("rpc.listen", str, "127.0.0.1:8700", "JSON-RPC address", _host_port),
    Setting("rpc.max_body_bytes", int, 1024 * 1024, "largest JSON-RPC request body", _positive),
    Setting("rpc.max_batch", int, 100, "most requests in one JSON-RPC batch", _positive),
    Setting("rpc.max_wait_seconds", int, 60, "longest a tx_wait call may wait for finality", _positive),
    Setting(
        "rpc.body_timeout_seconds", int, 10,
        "a request body must arrive within this long (HTTP 408 otherwise); it holds no request slot meanwhile",
        _positive,
    ),
    Setting(
        "rpc.max_waiting", int, 256,
        "most tx_wait calls waiting at once, apart from requests in flight", _positive,
    ),
    Setting(
        "rpc.max_waiting_per_source", int, 64,
        "of those, from one address (an IPv6 address counts as its /64), over POST and websockets alike; "
        "at most rpc.max_waiting", _positive,
    ),
    Setting(
        "rpc.max_connections_per_source", int, 256,
        "open connections to the RPC port from one address (a wallet service may keep many)", _positive,
    ),
    Setting(
        "rpc.cors_origins", list, [],
        "browser origins (https://wallet.example) whose pages may call JSON-RPC; empty: none (off); "
        "* allows every web page, for development only",
        lambda value: next((problem for problem in map(origin_problem, value) if problem), None),
    ),
    Setting(
        "rpc.allowed_hosts", list, ["localhost"],
        "host names (node.village.example) requests to the RPC port may be addressed to, besides IP addresses "
        "and the name in rpc.listen; others are refused (HTTP 403) so that no web page can reach the node by "
        "DNS rebinding; * allows any name, for a node behind a proxy that checks names itself",
        lambda value: next((problem for problem in map(host_name_problem, value) if problem), None),
    ),
    Setting(
        "rpc.header_timeout_seconds", int, 10,
        "a request's head must arrive within this long of the connection opening or its previous answer",
        _positive,
    ),
    Setting(
        "rpc.max_websockets", int, 256,
        "websockets open at once on the RPC port's /ws, from all addresses (one more is answered 503)", _positive,
    ),
    Setting(
        "rpc.max_websockets_per_source", int, 16,
        "of those, from one address (an IPv6 address counts as its /64); at most rpc.max_websockets (each is "
        "one of the address's rpc.max_connections_per_source too)", _positive,
    ),
    Setting(
        "rpc.max_subscriptions_per_websocket", int, 8,
        "subscriptions one websocket may hold (one more is answered -32000)", _positive,
    ),
    Setting(
        "rpc.websocket_queue", int, 256,
        "notifications waiting to be sent on one websocket; one more closes it (code 1008): a client that "
        "does not read costs a bounded amount of memory, and reconnects to read what it missed by height",
        _positive,
    ),
    Setting("rpc.explorer", bool, True, "serve the block explorer page at /explorer/ on the JSON-RPC port"),
    Setting("consensus.base_timeout_ms", int, 2_000, "first view timeout at a height", _positive),
    Setting(
        "consensus.double_sign_check_heights", int, 3,
        "with a new (empty) vote record, sign nothing at this many heights from the one the network "
        "works on, where this validator may have voted before (0: no check)",
        lambda value: None if value >= 0 else "must not be negative",
    ),
    Setting(
        "consensus.max_timeout_ms", int, 30_000,
        "ceiling on view timeouts, which double per failed view", _positive,
    ),
    Setting(
        "consensus.block_interval_ms", int, 200,
        "how long the primary gathers transactions for a block", _positive,
    ),
    Setting(
        "consensus.empty_block_interval_ms", int, 60_000,
        "with no transactions pending, how long the primary waits before an empty block (arriving "
        "transactions cut it short); view timers allow for it, so a failed primary of an idle chain is "
        "replaced within this plus base_timeout_ms, or within block_interval_ms plus base_timeout_ms of "
        "transactions arriving",
        _positive,
    ),
    Setting(
        "consensus.max_block_transactions", int, 5_000,
        "most transactions this node puts in a block it proposes (at most the genesis limit), so that "
        "every validator checks a block well within base_timeout_ms even with a backlog",
        _positive,
    ),
    Setting(
        "sync.verify_signatures", bool, False,
        "check every transaction signature of final blocks fetched from peers; off, their commit "
        "certificates vouch for them (a quorum checked each one) and the state root for the result",
    ),
    Setting(
        "sync.mode", str, "full",
        "how a node with an empty data_dir joins: full replays every block from genesis (and keeps them all, "
        "for auditors and history queries); snapshot fetches the state of a recent final height from peers, "
        "checked against that height's certified state root, keeps no block below it, and replays from "
        "genesis only if no peer offers a snapshot",
        _choice("full", "snapshot"),
    ),
    Setting(
        "sync.snapshot_interval", int, 10_000,
        "this node makes a snapshot of the state, to serve to joining nodes, at every final height that is a "
        "multiple of this (every node of a network should use the same value: a joining node fetches one "
        "height's snapshot from several peers); building one costs about 8 microseconds per state entry, "
        "off the event loop",
        _positive,
    ),
    Setting("sync.snapshots_kept", int, 2, "how many of the latest snapshots this node keeps serving", _positive),
    Setting(
        "sync.snapshot_wait_seconds", int, 30,
        "with sync.mode snapshot, how long to wait for peers to offer a snapshot before replaying from genesis",
        _positive,
    ),
    Setting(
        "sync.deadline_seconds", int, 3600,
        "with sync.mode snapshot, the longest a join by state sync may take before replaying from genesis",
        _positive,
    ),
    Setting(
        "sync.serve_bytes_per_second", int, 8 * 1024 * 1024,
        "most snapshot bytes per second this node sends one joining peer", _positive,
    ),
    Setting("sync.serve_peers", int, 4, "most joining peers whose snapshot requests are read at once", _positive),
    Setting("mempool.max_transactions", int, 50_000, "most pending transactions", _positive),
    Setting(
        "mempool.rebroadcast_after_ms", int, 3_000,
        "a sender whose next transaction stays pending this long, while blocks are made without it, "
        "has its ready run gossiped again (a dropped gossip frame must not hold it back forever)",
        _positive,
    ),
    Setting("mempool.max_bytes", int, 32 * 1024 * 1024, "most pending transaction bytes", _positive),
    Setting(
        "mempool.expire_after_seconds", int, 600,
        "a transaction still pending this long after this node admitted it is dropped (rule expired; "
        "tx_wait and chain_getTransaction say so); 0: never",
        lambda value: None if value >= 0 else "must not be negative",
    ),
    Setting("log.level", str, "info", "debug, info, warning or error", _choice("debug", "info", "warning", "error")),
    Setting("log.format", str, "text", "text (one human-readable line per event) or json", _choice("text", "json")),
)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Resolved settings: every path absolute, every value checked."""

    #: Values by dotted path (see ``SETTINGS``).
    values: dict[str, Any]
    #: Directory relative paths are resolved against.
    base_dir: Path = field(default=Path("."))

    def __getitem__(self, path: str) -> Any:
        return self.values[path]

    def path(self, name: str) -> Path:
        return (self.base_dir / str(self.values[name])).resolve()

    def vote_record_path(self) -> Path:
        """Where the vote record lives: as configured, or beside the key file."""
        if self.values["vote_record"]:
            return self.path("vote_record")
        return self.path("key_file").with_suffix(".votes")

    @staticmethod
    def split_address(address: str) -> tuple[str, int]:
        host, _, port = address.rpartition(":")
        return host, int(port)


#: Settings that must not exceed another: (the smaller, the larger). One address cannot hold more
#: websockets, or waiting calls, than all addresses together.
AT_MOST: tuple[tuple[str, str], ...] = (
    ("rpc.max_websockets_per_source", "rpc.max_websockets"),
    ("rpc.max_waiting_per_source", "rpc.max_waiting"),
)


def _relation_problem(values: dict[str, Any]) -> str | None:
    """The first setting that exceeds one it must not (``AT_MOST``), named with both values; or None."""
    for smaller, larger in AT_MOST:
        if values[smaller] > values[larger]:
            return (f"setting {smaller}: {values[smaller]} is more than {larger} ({values[larger]}); "
                    f"it must be at most that")
    return None


def _flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, path + ".")
        else:
            flat[path] = value
    return flat


def _check_value(setting: Setting, value: Any) -> str | None:
    if setting.kind is int and (type(value) is not int):
        return f"expected an integer, got {value!r}"
    if setting.kind is bool and type(value) is not bool:
        return f"expected true or false, got {value!r}"
    if setting.kind is str and not isinstance(value, str):
        return f"expected text, got {value!r}"
    if setting.kind is list and not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return f"expected a list of strings, got {value!r}"
    return setting.check(value) if setting.check else None


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> NodeConfig:
    """Read the TOML file at ``path`` (or only defaults), apply ``overrides`` from the
    command line, and check every field; the first problem raises ``ConfigError``."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    flat = _flatten(document) | {key: value for key, value in (overrides or {}).items() if value is not None}
    known = {setting.path: setting for setting in SETTINGS}
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    values = {}
    for setting in SETTINGS:
        value = flat.get(setting.path, setting.default)
        problem = _check_value(setting, value)
        if problem:
            raise ConfigError(f"setting {setting.path}: {problem}")
        values[setting.path] = value
    problem = _relation_problem(values)
    if problem:
        raise ConfigError(problem)
    base_dir = path.parent if path is not None else Path.cwd()
    return NodeConfig(values, base_dir)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One command-line flag per setting, e.g. ``--rpc-listen 127.0.0.1:8701``; its help ends with the default."""
    for setting in SETTINGS:
        metavar = setting.path.rpartition(".")[2].upper()
        # argparse formats help with %; the flag's own default stays None, so that only flags given override.
        repeat = "give the flag once per item; " if setting.kind is list else ""
        text = f"{setting.help} ({repeat}default: {format_default(setting.default)})".replace("%", "%%")
        if setting.kind is list:
            parser.add_argument(setting.flag, dest=setting.path, action="append", metavar=metavar, help=text)
        elif setting.kind is bool:
            parser.add_argument(setting.flag, dest=setting.path, action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(setting.flag, dest=setting.path, type=setting.kind, metavar=metavar, help=text)


def format_default(value: Any) -> str:
    """A setting's default as it is written in node.toml: ``"data"``, ``1000``, ``false``, ``[]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list)):
        return json.dumps(value)
    return str(value)


def check_listen_addresses(config: NodeConfig) -> None:
    """Refuse, before the node opens or logs anything, an address it cannot listen on
    because another process holds the port; the message names the holder."""
    addresses = {setting: NodeConfig.split_address(config[setting]) for setting in ("p2p.listen", "rpc.listen")}
    if addresses["p2p.listen"] == addresses["rpc.listen"] and addresses["rpc.listen"][1] != 0:
        raise ConfigError(f"p2p.listen and rpc.listen are both {format_address(*addresses['rpc.listen'])}")
    for setting, (host, port) in addresses.items():
        if address_in_use(host, port):
            raise ConfigError(port_in_use_message(setting, host, port))


def listen_problem(setting: str, host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return port_in_use_message(setting, host, port)
    return f"{setting}: cannot listen on {format_address(host, port)}: {error.strerror or error}"


def parse_peer(text: str) -> PeerAddress:
    """``KEYHEX@host:port`` as a peer address."""
    key, _, address = text.partition("@")
    host, _, port = address.rpartition(":")
    try:
        public_key = bytes.fromhex(key)
        if len(public_key) != 32 or not host or not port.isdigit():
            raise ValueError
    except ValueError:
        raise ConfigError(f"setting p2p.peers: {text!r} is not KEYHEX@host:port") from None
    return PeerAddress(public_key, host, int(port))


class _OneLineErrorParser(argparse.ArgumentParser):
    # The usage of every setting is long: a mistyped flag gets one line, --help the rest.
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help lists every setting)\n")


def argument_parser(*, prog: str = "python -m mura.node", require_config: bool = False) -> argparse.ArgumentParser:
    """The node's command line: ``--config`` and one flag per setting, each with its default."""
    parser = _OneLineErrorParser(
        prog=prog,
        usage=f"%(prog)s {'--config FILE' if require_config else '[--config FILE]'} [--SETTING VALUE ...]",
        description="Run a Mura node (a validator, or an observer) until SIGINT or SIGTERM. Every setting can be "
        "given in the config file or as a flag below; a flag overrides the file, the file overrides the default.",
    )
    parser.add_argument(
        "--config", type=Path, required=require_config, metavar="FILE",
        help="TOML config file (the flags below override it)",
    )
    add_setting_flags(parser)
    return parser
