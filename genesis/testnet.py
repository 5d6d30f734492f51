"""The local testnet: fresh keys for each validator, a treasury and a bank, a genesis
naming them, a node config per validator, and a launcher that runs them.

``python -m mura.genesis.testnet --out testnet --validators 4`` writes
``keys/<validator-name>.key``, ``keys/treasury.key`` (the issuer of NAC) and
``keys/bank.key`` (the issuer of JPYT), owner-only (0600), ``genesis.json`` and
``nodes/<validator-name>/node.toml``. Validator i serves
JSON-RPC on 127.0.0.1:(8700 + i) and peers on 127.0.0.1:(9700 + i);
``--rpc-port`` and ``--p2p-port`` move the first of each. ``--observers N``
adds N observer nodes (``keys/observer-j.key``, ``nodes/observer-j/node.toml``
with ``role = "observer"``), which follow the chain without a vote: observer j
serves JSON-RPC on 127.0.0.1:(8710 + j - 1) and peers on 127.0.0.1:(9710 + j - 1)
(10 above the first validator's ports, or as many as there are validators), and
every validator's config admits them (``p2p.observers``; a validator config
without that setting gets it added, one naming other keys is refused). It never
overwrites anything: a directory that already holds a genesis is refused or, with
``--if-missing``, left as it is (only missing node configs are added), so
``make testnet`` may run any number of times without replacing a network's
keys. An existing testnet keeps the ports it was generated with: asking for
others is refused (its peer ports are part of its genesis, hence of its chain).
``--run`` then starts every node as its own process, prefixes each line of
their logs with the validator's name, and stops them all on Ctrl-C; a port
another process holds is reported, one line per node, before any starts.
``--reset`` deletes the testnet, unless one of its nodes is running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mura.chain.address import encode_address, validate_prefix
from mura.chain.block import MAX_VALIDATORS
from mura.chain.errors import Invalid
from mura.chain.keys import SigningKey, load_key, save_key
from mura.genesis.format import Genesis, format_genesis_time, load_genesis, parse_genesis, parse_genesis_time
from mura.genesis.launch import (
    NodeAddresses,
    RunningNode,
    describe_running,
    ports_in_use,
    read_node_addresses,
    run_nodes,
)
from mura.genesis.launch import running_nodes as find_running_nodes

GENESIS_FILE = "genesis.json"
KEYS_DIRECTORY = "keys"
TREASURY_NAME = "treasury"
#: The partner bank's key: it issues JPYT, the yen settlement token.
BANK_NAME = "bank"
DEFAULT_CHAIN_ID = "nishiawakura-testnet-1"
DEFAULT_PREFIX = "tnac"
DEFAULT_BASE_PEER_PORT = 9700
DEFAULT_BASE_RPC_PORT = 8700
NODES_DIRECTORY = "nodes"
#: 1,000,000 NAC at 2 decimals.
DEFAULT_TREASURY_AMOUNT = 100_000_000
#: 100,000,000 JPYT (yen, no decimals) in the partner bank's account.
DEFAULT_BANK_AMOUNT = 100_000_000
#: The village's coin, issued by the token association's treasury; the network's default asset.
NAC = {"id": "NAC", "name": "Nishiawakura Coin", "decimals": 2}
#: The yen settlement token, issued by a partner bank.
JPYT = {"id": "JPYT", "name": "JPY Token", "decimals": 0}
#: Observer nodes are named ``observer-1``, ``observer-2``, ...
OBSERVER_PREFIX = "observer-"
#: The first observer's ports are this far above the first validator's (or as many as there are validators).
OBSERVER_PORT_OFFSET = 10
MAX_OBSERVERS = 8
#: The Nishiawakura network's first validators; larger testnets add ``partner-5``, ``partner-6``, ...
VALIDATOR_NAMES = ("village-office", "token-association", "regional-chain-partner", "forestry-cooperative")


class TestnetError(Exception):
    """The generator refused to write a testnet; the message says why."""

    __test__ = False  # not a pytest test class, despite its name


@dataclass(frozen=True, slots=True)
class TestnetLayout:
    """What a testnet directory holds, and whether this run wrote it."""

    __test__ = False  # not a pytest test class, despite its name

    #: The testnet's directory.
    directory: Path
    #: Its ``genesis.json``.
    genesis_path: Path
    #: Key files this run wrote, validators in order then the treasury and the bank; empty if none.
    key_paths: tuple[Path, ...]
    #: The genesis the directory holds.
    genesis: Genesis
    #: Public key of the treasury (the first issuer), or None if the genesis names no issuer.
    treasury: bytes | None
    #: False when a genesis was already there and every file was left untouched.
    created: bool


def validator_names(count: int) -> tuple[str, ...]:
    """Names of the first ``count`` validators: the four founders, then partners."""
    extra = (f"partner-{number}" for number in range(len(VALIDATOR_NAMES) + 1, count + 1))
    return (VALIDATOR_NAMES + tuple(extra))[:count]


def generate_testnet(
    directory: Path | str,
    *,
    validators: int = 4,
    chain_id: str = DEFAULT_CHAIN_ID,
    prefix: str = DEFAULT_PREFIX,
    base_peer_port: int | None = None,
    base_rpc_port: int | None = None,
    treasury_amount: int = DEFAULT_TREASURY_AMOUNT,
    genesis_time_ms: int | None = None,
    if_missing: bool = False,
) -> TestnetLayout:
    """Write fresh keys, a genesis and node configs into ``directory``; never overwrites a file.

    Validator i peers on ``base_peer_port + i`` and serves JSON-RPC on
    ``base_rpc_port + i`` (9700 and 8700 when not given). With a genesis already
    present, raises ``TestnetError`` unless ``if_missing``, in which case only
    missing node configs are written and the existing genesis is returned; ports
    given that differ from the ones it was generated with are refused. The
    genesis time defaults to now, to the second.
    """
    directory = Path(directory)
    genesis_path = directory / GENESIS_FILE
    _check_arguments(validators, base_peer_port, base_rpc_port, prefix)
    if genesis_path.exists():
        if if_missing:
            layout = _existing_layout(directory)
            check_ports_unchanged(layout, base_peer_port=base_peer_port, base_rpc_port=base_rpc_port)
            write_node_configs(layout, base_rpc_port=DEFAULT_BASE_RPC_PORT if base_rpc_port is None else base_rpc_port)
            return layout
        raise TestnetError(
            f"{genesis_path} already exists; refusing to replace a network's genesis (use --if-missing to keep it)"
        )
    names = validator_names(validators)
    keys = {name: SigningKey.generate() for name in (*names, TREASURY_NAME, BANK_NAME)}
    timestamp_ms = genesis_time_ms if genesis_time_ms is not None else int(time.time()) * 1000
    document = _testnet_document(
        chain_id=chain_id,
        prefix=prefix,
        timestamp_ms=timestamp_ms,
        keys=keys,
        validator_names=names,
        base_peer_port=DEFAULT_BASE_PEER_PORT if base_peer_port is None else base_peer_port,
        treasury_amount=treasury_amount,
    )
    # The generator's output passes the same checks as any genesis file.
    genesis = parse_genesis(document)
    key_paths = _save_keys(directory / KEYS_DIRECTORY, keys)
    with open(genesis_path, "x", encoding="utf-8") as file:
        file.write(genesis.to_json())
    treasury = keys[TREASURY_NAME].public_key
    layout = TestnetLayout(directory, genesis_path, key_paths, genesis, treasury, created=True)
    write_node_configs(layout, base_rpc_port=DEFAULT_BASE_RPC_PORT if base_rpc_port is None else base_rpc_port)
    return layout


def node_config_path(directory: Path, name: str) -> Path:
    return directory / NODES_DIRECTORY / name / "node.toml"


def observer_names(count: int) -> tuple[str, ...]:
    """Names of the first ``count`` observers: ``observer-1``, ``observer-2``, ..."""
    return tuple(f"{OBSERVER_PREFIX}{number}" for number in range(1, count + 1))


def observer_port_offset(validators: int) -> int:
    """How far above the first validator's ports the first observer's are: 10, or the
    number of validators when there are more."""
    return max(OBSERVER_PORT_OFFSET, validators)


def add_observers(layout: TestnetLayout, count: int, *, base_rpc_port: int = DEFAULT_BASE_RPC_PORT) -> list[Path]:
    """Give the testnet ``count`` observers: a key and a config for each that has none yet
    (see the module docstring), and every validator config admitting them; returns the
    files written or changed."""
    if count < 0 or count > MAX_OBSERVERS:
        raise TestnetError(f"a testnet has 0 to {MAX_OBSERVERS} observers, got {count}")
    genesis = layout.genesis
    offset = observer_port_offset(len(genesis.validators))
    base_peer_port = int(genesis.validators[0].peer_address.rpartition(":")[2])
    for kind, base in (("peer", base_peer_port), ("RPC", base_rpc_port)):
        if base + offset + count - 1 > 65535:
            raise TestnetError(f"observer {kind} ports from {base + offset} are not all in 1-65535")
    written: list[Path] = []
    keys: list[bytes] = []
    for index, name in enumerate(observer_names(count)):
        key_path = layout.directory / KEYS_DIRECTORY / f"{name}.key"
        if key_path.exists():
            keys.append(load_key(key_path).public_key)
        else:
            key = SigningKey.generate()
            save_key(key_path, key, label=name)
            keys.append(key.public_key)
            written.append(key_path)
        config = node_config_path(layout.directory, name)
        if not config.exists():
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(
                f"# Observer {index + 1} of the local testnet: it follows the chain and never votes.\n"
                "# Every setting and its default: python -m mura.node --help\n"
                'role = "observer"\n'
                'data_dir = "data"\n'
                f'key_file = "../../{KEYS_DIRECTORY}/{name}.key"\n'
                f'genesis_file = "../../{GENESIS_FILE}"\n\n'
                f'[p2p]\nlisten = "127.0.0.1:{base_peer_port + offset + index}"\n\n'
                f'[rpc]\nlisten = "127.0.0.1:{base_rpc_port + offset + index}"\n'
            )
            written.append(config)
    for validator in genesis.validators:
        config = node_config_path(layout.directory, validator.name)
        if config.exists() and _admit_observers(config, keys):
            written.append(config)
    return written


def _admit_observers(config: Path, keys: Sequence[bytes]) -> bool:
    """Have the validator config at ``config`` admit ``keys`` as observers: a config with no
    ``p2p.observers`` gets it (True); one naming exactly those keys is left as it is; one
    naming others is refused (the operator chose them)."""
    text = config.read_text()
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TestnetError(f"{config} is not valid TOML: {error}") from None
    table = document.get("p2p")
    wanted = [key.hex() for key in keys]
    if isinstance(table, dict) and "observers" in table:
        if sorted(table["observers"]) == sorted(wanted):
            return False
        raise TestnetError(
            f"{config} admits the observers {table['observers']} (p2p.observers); the testnet's observers are "
            f"{wanted}: set that list there, or reset the testnet"
        )
    if not wanted:
        return False
    line = f"observers = {json.dumps(wanted)}\n"
    if isinstance(table, dict) and "\n[p2p]\n" in f"\n{text}":
        text = f"\n{text}".replace("\n[p2p]\n", f"\n[p2p]\n{line}", 1)[1:]
    else:
        text = f"{text.rstrip()}\n\n[p2p]\n{line}"
    config.write_text(text)
    return True


def write_node_configs(layout: TestnetLayout, *, base_rpc_port: int = DEFAULT_BASE_RPC_PORT) -> list[Path]:
    """A config for each validator that has none yet; returns the files written."""
    written = []
    for index, validator in enumerate(layout.genesis.validators):
        path = node_config_path(layout.directory, validator.name)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# Validator {index} of the local testnet: {validator.name}.\n"
            "# Every setting and its default: python -m mura.node --help\n"
            'data_dir = "data"\n'
            f'key_file = "../../{KEYS_DIRECTORY}/{validator.name}.key"\n'
            f'genesis_file = "../../{GENESIS_FILE}"\n\n'
            f'[p2p]\nlisten = "{validator.peer_address}"\n\n'
            f'[rpc]\nlisten = "127.0.0.1:{base_rpc_port + index}"\n'
        )
        written.append(path)
    return written


# --- ports ---------------------------------------------------------------------


def node_addresses(layout: TestnetLayout, *, observers: int = 0) -> list[NodeAddresses]:
    """Each validator's listen addresses, then the first ``observers`` observers', read from
    their node configs (absent or unreadable: none)."""
    names = [validator.name for validator in layout.genesis.validators] + list(observer_names(observers))
    return [read_node_addresses(name, node_config_path(layout.directory, name)) for name in names]


def check_ports_unchanged(layout: TestnetLayout, *, base_peer_port: int | None, base_rpc_port: int | None) -> None:
    """Refuse ports given for an existing testnet that differ from those it was generated with.

    The peer ports are in the genesis, whose hash the chain starts from, so they
    cannot move without a new network; the RPC ports could, but an existing
    testnet keeps all its ports rather than some, and its configs are left as
    the operator may have edited them.
    """
    peer_ports = [int(validator.peer_address.rpartition(":")[2]) for validator in layout.genesis.validators]
    rpc_ports = [node.port("rpc.listen") for node in node_addresses(layout)]
    asked_peer = base_peer_port is not None and (
        peer_ports != list(range(base_peer_port, base_peer_port + len(peer_ports)))
    )
    asked_rpc = base_rpc_port is not None and any(
        port is not None and port != base_rpc_port + index for index, port in enumerate(rpc_ports)
    )
    if asked_peer or asked_rpc:
        known_rpc = [port for port in rpc_ports if port is not None]
        raise TestnetError(
            f"{layout.directory} was generated with peer ports {_port_list(peer_ports)} (in its genesis) and RPC "
            f"ports {_port_list(known_rpc)}, and keeps them: run it without --p2p-port and --rpc-port, or give "
            "another --dir for a new testnet (or delete this one: mura testnet --reset)"
        )


def _port_list(ports: Sequence[int]) -> str:
    if not ports:
        return "(none configured)"
    if list(ports) == list(range(ports[0], ports[0] + len(ports))):
        return f"{ports[0]}-{ports[-1]}" if len(ports) > 1 else str(ports[0])
    return ", ".join(map(str, ports))


# --- reset ---------------------------------------------------------------------


def running_nodes(directory: Path) -> list[RunningNode]:
    """The testnet's nodes that are running now, by the locks a running node holds:
    ``nodes/<name>/data/LOCK`` and its vote record's ``keys/<name>.votes/LOCK``."""
    locks = [(path.parent.parent.name, path) for path in sorted(directory.glob(f"{NODES_DIRECTORY}/*/data/LOCK"))]
    locks += [
        (path.parent.name.removesuffix(".votes"), path)
        for path in sorted(directory.glob(f"{KEYS_DIRECTORY}/*.votes/LOCK"))
    ]
    return find_running_nodes(locks)


def reset_testnet(directory: Path | str) -> str:
    """Delete a testnet directory unless one of its nodes runs; returns what was done.

    Refuses a directory holding anything the generator does not write, so that a
    mistyped ``--dir`` cannot delete someone's files.
    """
    directory = Path(directory)
    if directory.is_symlink():
        raise TestnetError(f"{directory} is a symbolic link; refusing to delete through it (give the directory itself)")
    if not directory.exists():
        return f"{directory} does not exist; nothing to delete"
    if not directory.is_dir():
        raise TestnetError(f"{directory} is not a directory; refusing to delete it")
    foreign = _not_written_by_the_generator(directory)
    if foreign:
        raise TestnetError(
            f"{directory} holds {foreign!r}, which the testnet generator does not write; refusing to delete "
            "it (delete it by hand if it is a testnet)"
        )
    running = running_nodes(directory)
    if running:
        raise TestnetError(describe_running(directory, running) + ", then reset")
    shutil.rmtree(directory)
    return f"deleted {directory}"


def _not_written_by_the_generator(directory: Path) -> str | None:
    """The first entry of ``directory`` the generator would not have written, or None.

    Top-level names are not enough: a wallet's folder holding only ``keys/`` has them.
    A testnet has a genesis file that loads (or one the generator wrote before genesis
    declared assets), and its keys and node folders are named after that genesis's
    validators (and the treasury and the bank), as the generator names them.
    """
    written_here = {GENESIS_FILE, KEYS_DIRECTORY, NODES_DIRECTORY}
    for entry in sorted(directory.iterdir()):
        if entry.name not in written_here:
            return entry.name
    genesis_path = directory / GENESIS_FILE
    if genesis_path.is_symlink() or not genesis_path.is_file():
        return f"no {GENESIS_FILE}"
    names = _validator_names_in(genesis_path)
    if names is None:
        return f"{GENESIS_FILE} that is not a genesis"
    names |= set(observer_names(MAX_OBSERVERS))
    keys = {f"{name}.{suffix}" for name in (*names, TREASURY_NAME, BANK_NAME) for suffix in ("key", "votes")}
    for folder, expected in ((KEYS_DIRECTORY, keys), (NODES_DIRECTORY, names)):
        path = directory / folder
        if path.exists() or path.is_symlink():
            if path.is_symlink() or not path.is_dir():
                return folder
            for entry in sorted(path.iterdir()):
                if entry.name not in expected:
                    return f"{folder}/{entry.name}"
    return None


def _check_arguments(validators: int, base_peer_port: int | None, base_rpc_port: int | None, prefix: str) -> None:
    validate_prefix(prefix)
    if not 1 <= validators <= MAX_VALIDATORS:
        raise TestnetError(f"a testnet has 1 to {MAX_VALIDATORS} validators, got {validators}")
    peer = DEFAULT_BASE_PEER_PORT if base_peer_port is None else base_peer_port
    rpc = DEFAULT_BASE_RPC_PORT if base_rpc_port is None else base_rpc_port
    for kind, base in (("peer", peer), ("RPC", rpc)):
        if not 1 <= base <= 65536 - validators:
            raise TestnetError(f"{kind} ports {base}-{base + validators - 1} are not all in 1-65535")
    if peer < rpc + validators and rpc < peer + validators:
        raise TestnetError(
            f"peer ports {peer}-{peer + validators - 1} and RPC ports {rpc}-{rpc + validators - 1} overlap"
        )


def _validator_names_in(genesis_path: Path) -> set[str] | None:
    """The validators' names in the genesis at ``genesis_path``, also in the format before
    assets; None if it is no genesis."""
    try:
        return {validator.name for validator in load_genesis(genesis_path).validators}
    except Invalid:
        previous = _previous_format(genesis_path)
        return None if previous is None else {validator.name for validator in previous.validators}


def _previous_format(genesis_path: Path) -> Genesis | None:
    """The genesis at ``genesis_path`` without its token and its balances, if it is in the
    format before assets (``token`` and ``allocations`` where ``assets`` is now) and valid
    otherwise; None if it is not."""
    try:
        document = json.loads(genesis_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or "assets" in document or not {"token", "allocations"} <= document.keys():
        return None
    rest = {name: value for name, value in document.items() if name not in ("token", "allocations")}
    try:
        return parse_genesis({**rest, "assets": []})
    except Invalid:
        return None


def _existing_layout(directory: Path) -> TestnetLayout:
    genesis_path = directory / GENESIS_FILE
    if _previous_format(genesis_path) is not None:
        raise TestnetError(
            f"{genesis_path} is in the format before assets (a token and its allocations), which this version "
            f"no longer reads: delete the testnet (mura testnet --dir {directory} --reset) and generate a new one"
        )
    genesis = load_genesis(genesis_path)
    treasury = genesis.issuers[0] if genesis.issuers else None
    return TestnetLayout(directory, genesis_path, (), genesis, treasury, created=False)


def _testnet_document(
    *,
    chain_id: str,
    prefix: str,
    timestamp_ms: int,
    keys: dict[str, SigningKey],
    validator_names: Sequence[str],
    base_peer_port: int,
    treasury_amount: int,
) -> dict[str, Any]:
    """The genesis document: the validators in order; NAC issued by the treasury and JPYT by
    the bank, each open and reissuable and held wholly by its issuer; both have the issuer role."""
    validators = [
        {"name": name, "public_key": keys[name].public_key.hex(), "peer_address": f"127.0.0.1:{base_peer_port + index}"}
        for index, name in enumerate(validator_names)
    ]
    treasury = encode_address(keys[TREASURY_NAME].public_key, prefix)
    bank = encode_address(keys[BANK_NAME].public_key, prefix)
    return {
        "chain_id": chain_id,
        "address_prefix": prefix,
        "genesis_time": format_genesis_time(timestamp_ms),
        "validators": validators,
        "issuers": [treasury, bank],
        "assets": [
            {
                **NAC,
                "issuer": treasury,
                "supply": "reissuable",
                "policy": "open",
                "allocations": [{"address": treasury, "amount": treasury_amount}],
            },
            {
                **JPYT,
                "issuer": bank,
                "supply": "reissuable",
                "policy": "open",
                "allocations": [{"address": bank, "amount": DEFAULT_BANK_AMOUNT}],
            },
        ],
    }


def _save_keys(keys_directory: Path, keys: dict[str, SigningKey]) -> tuple[Path, ...]:
    """Save every key as ``<name>.key``; checks all are absent first, so a refusal writes nothing."""
    paths = {name: keys_directory / f"{name}.key" for name in keys}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing:
        raise TestnetError(f"key files already exist, refusing to overwrite them: {', '.join(existing)}")
    keys_directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, path in paths.items():
        save_key(path, keys[name], label=name)
    return tuple(paths.values())


# --- the command ---------------------------------------------------------------


class _UsageError(Exception):
    """A command-line argument argparse refused."""


class _ArgumentParser(argparse.ArgumentParser):
    # argparse prints usage and exits on a bad argument; main reports it as one line instead.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _genesis_time_argument(text: str) -> int:
    try:
        return parse_genesis_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _argument_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="python -m mura.genesis.testnet",
        description="Write keys, a genesis and node configs for a local testnet; optionally run it, or delete it.",
    )
    parser.add_argument(
        "--out", "--dir", type=Path, default=Path("testnet"), help="directory to write (default: testnet)"
    )
    parser.add_argument("--validators", type=int, default=4, help="number of validators (default: 4)")
    parser.add_argument(
        "--observers", type=int, default=0,
        help="observer nodes to add (and run): they follow the chain and never vote; observer j serves "
        f"JSON-RPC on the first validator's port + {OBSERVER_PORT_OFFSET} + j - 1 (default: 0)",
    )
    parser.add_argument("--chain-id", default=DEFAULT_CHAIN_ID, help=f"default: {DEFAULT_CHAIN_ID}")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"address prefix (default: {DEFAULT_PREFIX})")
    parser.add_argument(
        "--rpc-port",
        type=int,
        metavar="PORT",
        help=f"first validator's JSON-RPC port; validator i serves on PORT + i (default: {DEFAULT_BASE_RPC_PORT})",
    )
    parser.add_argument(
        "--p2p-port",
        type=int,
        metavar="PORT",
        help=f"first validator's peer port; validator i listens on PORT + i (default: {DEFAULT_BASE_PEER_PORT})",
    )
    # Moved only the peer ports, leaving every node on the RPC ports a running testnet holds.
    parser.add_argument("--base-peer-port", type=int, dest="removed_base_peer_port", help=argparse.SUPPRESS)
    parser.add_argument("--treasury-amount", type=int, default=DEFAULT_TREASURY_AMOUNT, help="in smallest units")
    parser.add_argument("--genesis-time", type=_genesis_time_argument, help="RFC 3339 UTC time (default: now)")
    parser.add_argument(
        "--if-missing", action="store_true", help="leave an existing testnet untouched instead of refusing"
    )
    parser.add_argument("--run", action="store_true", help="then run every node in the foreground until Ctrl-C")
    parser.add_argument(
        "--reset", action="store_true", help="delete the testnet instead (refused while any of its nodes runs)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate (and run) or reset a testnet as the arguments ask; 0 on success, 2 with
    one line on stderr when the arguments or the directory are refused or a port is taken."""
    try:
        arguments = _parse_arguments(argv)
        if arguments.reset:
            print(reset_testnet(arguments.out))
            return 0
        layout = generate_testnet(
            arguments.out,
            validators=arguments.validators,
            chain_id=arguments.chain_id,
            prefix=arguments.prefix,
            base_peer_port=arguments.p2p_port,
            base_rpc_port=arguments.rpc_port,
            treasury_amount=arguments.treasury_amount,
            genesis_time_ms=arguments.genesis_time,
            if_missing=arguments.if_missing,
        )
        written = add_observers(layout, arguments.observers, base_rpc_port=_base_rpc_port(layout))
    except (_UsageError, TestnetError, Invalid, OSError) as error:
        print(f"testnet: {error}", file=sys.stderr)
        return 2
    lines = describe_layout(layout) + [f"wrote {path}" for path in written]
    lines += describe_observers(layout, arguments.observers)
    print("\n".join(lines), flush=True)
    if not arguments.run:
        return 0
    return run_testnet(layout, observers=arguments.observers)


def _base_rpc_port(layout: TestnetLayout) -> int:
    """The first validator's JSON-RPC port, as its config says (the default when it says none)."""
    port = node_addresses(layout)[0].port("rpc.listen")
    return DEFAULT_BASE_RPC_PORT if port is None else port


def describe_observers(layout: TestnetLayout, count: int) -> list[str]:
    """A line per observer: where its JSON-RPC is."""
    lines = []
    for node in node_addresses(layout, observers=count)[len(layout.genesis.validators):]:
        port = node.port("rpc.listen")
        lines.append(f"observer {node.name}: JSON-RPC on http://127.0.0.1:{port} (follows the chain, never votes)")
    return lines


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = _argument_parser().parse_args(argv)
    if arguments.removed_base_peer_port is not None:
        raise _UsageError(
            "--base-peer-port is gone (it moved the peer ports only): use --p2p-port for the peer ports and "
            "--rpc-port for the JSON-RPC ports"
        )
    if arguments.reset and arguments.run:
        raise _UsageError("--reset deletes the testnet; it cannot be combined with --run")
    return arguments


def run_testnet(layout: TestnetLayout, *, observers: int = 0) -> int:
    """Run every validator of the testnet and its first ``observers`` observers until
    Ctrl-C, unless it already runs or a port it needs is taken: then one line for each
    node in the way, and 2."""
    running = running_nodes(layout.directory)
    if running:
        print(f"testnet: {describe_running(layout.directory, running)}", file=sys.stderr)
        return 2
    nodes = node_addresses(layout, observers=observers)
    taken = ports_in_use(nodes)
    if taken:
        for line in taken:
            print(f"testnet: {line}", file=sys.stderr)
        print(
            "testnet: started no node; another testnet may be running: a new one can take other ports "
            "(mura testnet --dir DIR --rpc-port 8800 --p2p-port 9800)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(run_nodes([(node.name, node.config) for node in nodes]))


def describe_layout(layout: TestnetLayout) -> list[str]:
    """Lines telling an operator what was written (or kept) and the network's identity."""
    if layout.created:
        lines = [f"wrote {path}" for path in (*layout.key_paths, layout.genesis_path)]
    else:
        lines = [f"{layout.genesis_path} already exists; left every file untouched"]
    genesis = layout.genesis
    lines.append(f"chain id: {genesis.chain_id}")
    lines.append(f"validators: {', '.join(validator.name for validator in genesis.validators)}")
    if layout.treasury is not None:
        lines.append(f"treasury: {encode_address(layout.treasury, genesis.address_prefix)}")
    for asset in genesis.assets:
        issuer = encode_address(asset.terms.issuer, genesis.address_prefix)
        lines.append(f"asset {asset.terms.asset} ({asset.terms.name}): issuer {issuer}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
