"""The local testnet: fresh keys for each validator and a treasury, a genesis
naming them, a node config per validator, and a launcher that runs them.

``python -m mura.genesis.testnet --out testnet --validators 4`` writes
``keys/<validator-name>.key`` and ``keys/treasury.key`` (owner-only, 0600),
``genesis.json`` and ``nodes/<validator-name>/node.toml`` (validator i serves
JSON-RPC on 127.0.0.1:870i and peers on 127.0.0.1:970i). It never overwrites
anything: a directory that already holds a genesis is refused or, with
``--if-missing``, left as it is (only missing node configs are added), so
``make testnet`` may run any number of times without replacing a network's
keys. ``--run`` then starts every node as its own process, prefixes each
line of their logs with the validator's name, and stops them all on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mura.chain.address import encode_address, validate_prefix
from mura.chain.block import MAX_VALIDATORS
from mura.chain.errors import Invalid
from mura.chain.keys import SigningKey, save_key
from mura.genesis.launch import run_nodes
from mura.genesis.format import Genesis, format_genesis_time, load_genesis, parse_genesis, parse_genesis_time

GENESIS_FILE = "genesis.json"
KEYS_DIRECTORY = "keys"
TREASURY_NAME = "treasury"
DEFAULT_CHAIN_ID = "nishiawakura-testnet-1"
DEFAULT_PREFIX = "tnac"
DEFAULT_BASE_PEER_PORT = 9700
DEFAULT_BASE_RPC_PORT = 8700
NODES_DIRECTORY = "nodes"
#: 1,000,000 NAC at 2 decimals.
DEFAULT_TREASURY_AMOUNT = 100_000_000
TOKEN = {"name": "Nishiawakura Coin", "symbol": "NAC", "decimals": 2}
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
    #: Key files this run wrote, validators in order then the treasury; empty if none.
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
    base_peer_port: int = DEFAULT_BASE_PEER_PORT,
    treasury_amount: int = DEFAULT_TREASURY_AMOUNT,
    genesis_time_ms: int | None = None,
    if_missing: bool = False,
) -> TestnetLayout:
    """Write fresh keys and a genesis into ``directory``; never overwrites a file.

    With a genesis already present, raises ``TestnetError`` unless ``if_missing``,
    in which case nothing is written and the existing genesis is returned.
    The genesis time defaults to now, to the second.
    """
    directory = Path(directory)
    genesis_path = directory / GENESIS_FILE
    _check_arguments(validators, base_peer_port, prefix)
    if genesis_path.exists():
        if if_missing:
            layout = _existing_layout(directory)
            write_node_configs(layout)
            return layout
        raise TestnetError(
            f"{genesis_path} already exists; refusing to replace a network's genesis (use --if-missing to keep it)"
        )
    names = validator_names(validators)
    keys = {name: SigningKey.generate() for name in (*names, TREASURY_NAME)}
    timestamp_ms = genesis_time_ms if genesis_time_ms is not None else int(time.time()) * 1000
    document = _testnet_document(
        chain_id=chain_id,
        prefix=prefix,
        timestamp_ms=timestamp_ms,
        keys=keys,
        validator_names=names,
        base_peer_port=base_peer_port,
        treasury_amount=treasury_amount,
    )
    # The generator's output passes the same checks as any genesis file.
    genesis = parse_genesis(document)
    key_paths = _save_keys(directory / KEYS_DIRECTORY, keys)
    with open(genesis_path, "x", encoding="utf-8") as file:
        file.write(genesis.to_json())
    treasury = keys[TREASURY_NAME].public_key
    layout = TestnetLayout(directory, genesis_path, key_paths, genesis, treasury, created=True)
    write_node_configs(layout)
    return layout


def node_config_path(directory: Path, name: str) -> Path:
    return directory / NODES_DIRECTORY / name / "node.toml"


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


def _check_arguments(validators: int, base_peer_port: int, prefix: str) -> None:
    validate_prefix(prefix)
    if not 1 <= validators <= MAX_VALIDATORS:
        raise TestnetError(f"a testnet has 1 to {MAX_VALIDATORS} validators, got {validators}")
    if not 1 <= base_peer_port <= 65536 - validators:
        raise TestnetError(f"peer ports {base_peer_port}..{base_peer_port + validators - 1} are not all in 1..65535")


def _existing_layout(directory: Path) -> TestnetLayout:
    genesis_path = directory / GENESIS_FILE
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
    """The genesis document: the validators in order, the treasury as issuer and sole holder."""
    validators = [
        {"name": name, "public_key": keys[name].public_key.hex(), "peer_address": f"127.0.0.1:{base_peer_port + index}"}
        for index, name in enumerate(validator_names)
    ]
    treasury = encode_address(keys[TREASURY_NAME].public_key, prefix)
    return {
        "chain_id": chain_id,
        "address_prefix": prefix,
        "genesis_time": format_genesis_time(timestamp_ms),
        "token": dict(TOKEN),
        "validators": validators,
        "issuers": [treasury],
        "allocations": [{"address": treasury, "amount": treasury_amount}],
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
        prog="python -m mura.genesis.testnet", description="Write keys and a genesis for a local testnet."
    )
    parser.add_argument("--out", type=Path, default=Path("testnet"), help="directory to write (default: testnet)")
    parser.add_argument("--validators", type=int, default=4, help="number of validators (default: 4)")
    parser.add_argument("--chain-id", default=DEFAULT_CHAIN_ID, help=f"default: {DEFAULT_CHAIN_ID}")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"address prefix (default: {DEFAULT_PREFIX})")
    parser.add_argument("--base-peer-port", type=int, default=DEFAULT_BASE_PEER_PORT, help="first validator's port")
    parser.add_argument("--treasury-amount", type=int, default=DEFAULT_TREASURY_AMOUNT, help="in smallest units")
    parser.add_argument("--genesis-time", type=_genesis_time_argument, help="RFC 3339 UTC time (default: now)")
    parser.add_argument(
        "--if-missing", action="store_true", help="leave an existing testnet untouched instead of refusing"
    )
    parser.add_argument("--run", action="store_true", help="then run every node in the foreground until Ctrl-C")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate a testnet as the arguments ask; 0 on success, 2 with one line on stderr otherwise."""
    try:
        arguments = _argument_parser().parse_args(argv)
        layout = generate_testnet(
            arguments.out,
            validators=arguments.validators,
            chain_id=arguments.chain_id,
            prefix=arguments.prefix,
            base_peer_port=arguments.base_peer_port,
            treasury_amount=arguments.treasury_amount,
            genesis_time_ms=arguments.genesis_time,
            if_missing=arguments.if_missing,
        )
    except (_UsageError, TestnetError, Invalid, OSError) as error:
        print(f"testnet: {error}", file=sys.stderr)
        return 2
    print("\n".join(describe_layout(layout)), flush=True)
    if not arguments.run:
        return 0
    nodes = [(v.name, node_config_path(layout.directory, v.name)) for v in layout.genesis.validators]
    return asyncio.run(run_nodes(nodes))


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
    return lines


if __name__ == "__main__":
    sys.exit(main())
