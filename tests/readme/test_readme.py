"""The README is a contract: every example it shows runs against a real testnet and
prints what the README shows, in shape (see ``contract.py`` for the conventions).

A README change that breaks an example fails here; a change to the product that makes
an example print something else fails here too, and the README is what gets fixed.
Commands that run until Ctrl-C or for minutes are marked not run in the README and
checked through their ``--help``. ``make testnet`` itself is what the ``workspace``
fixture does: the same generator (``genesis/testnet.py``, through ``tests/node/cluster.py``),
four validators as separate processes, on free ports, with fast timers (empty blocks every
200 ms). ``mura node run`` needs the testnet stopped and runs until Ctrl-C: its ``--config``
is checked in its own help and ``--log-level`` in the node's (``python -m mura.node --help``),
which its help refers to.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mura
from mura.config import SETTINGS, ConfigError, load_config
from mura.genesis.testnet import DEFAULT_BASE_PEER_PORT, DEFAULT_BASE_RPC_PORT, node_config_path
from mura.tests.node.cluster import Cluster
from mura.tests.readme import contract
from mura.tests.readme.contract import Block, Substitutions

REPOSITORY = Path(mura.__file__).resolve().parent
README = REPOSITORY / "README.md"
VALIDATORS = 4
#: The README's observer serves JSON-RPC on 127.0.0.1:8710 (see *Observer nodes*).
OBSERVER_RPC_PORT = DEFAULT_BASE_RPC_PORT + 10

pytestmark = pytest.mark.processes


@dataclass
class Workspace:
    """A working directory laid out as the README assumes, beside a running testnet."""

    directory: Path
    cluster: Cluster
    env: dict[str, str]
    learned: Substitutions


def readme_blocks() -> list[Block]:
    return contract.read_blocks(README.read_text())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    directory = tmp_path_factory.mktemp("readme")
    bin_directory = Path(sys.executable).parent
    if not (bin_directory / "mura").exists():
        pytest.fail(f"the README's commands need the venv's mura, not found in {bin_directory}")
    # `.venv/bin/mura` in the README: the venv this test runs in, as `make test` made it.
    (directory / ".venv").symlink_to(bin_directory.parent)
    cluster = Cluster(directory / "testnet", validators=VALIDATORS, observers=1)
    try:
        cluster.start_all()
        ports = {}
        for index, validator in enumerate(cluster.layout.genesis.validators):
            for host in ("127.0.0.1", "localhost"):
                ports[f"{host}:{DEFAULT_BASE_RPC_PORT + index}"] = f"{host}:{cluster.rpc_ports[index]}"
            ports[f"127.0.0.1:{DEFAULT_BASE_PEER_PORT + index}"] = validator.peer_address
        for host in ("127.0.0.1", "localhost"):
            ports[f"{host}:{OBSERVER_RPC_PORT}"] = f"{host}:{cluster.rpc_ports[VALIDATORS]}"
        learned = Substitutions(ports=ports, root=directory)
        env = contract.environment(bin_directory, f"http://127.0.0.1:{cluster.rpc_ports[0]}")
        yield Workspace(directory, cluster, env, learned)
    finally:
        cluster.close()


def test_readme_examples_run_and_print_what_it_shows(workspace: Workspace) -> None:
    """Every transcript and JSON-RPC example, in README order, sharing what each one learned."""
    failures: list[str] = []
    ran = 0
    prose = ""
    for block in readme_blocks():
        prose += block.prose
        if block.not_run is None and block.language not in contract.LANGUAGES:
            failures.append(f"README.md:{block.line_number}: a ```{block.language} block, which the README "
                            f"contract does not check: use one of {contract.LANGUAGES} or mark it not run")
        if block.not_run is not None or block.language not in ("text", "sh"):
            continue
        try:
            ran += _run_block(block, prose, workspace, failures)
        except contract.ContractError as error:
            failures.append(str(error))
    assert ran, "the README shows no example to run"
    assert not failures, f"{len(failures)} README example problems:\n" + "\n".join(failures)


def _run_block(block: Block, prose: str, workspace: Workspace, failures: list[str]) -> int:
    """Run a block's examples, adding their problems to ``failures``; how many ran. ``prose``:
    the README's text before the block (the last ``curl`` form stated there sends requests)."""
    if contract.is_rpc_block(block):
        template = contract.curl_template(prose)
        examples = contract.rpc_examples(block)
        for example in examples:
            problems = contract.check_rpc(example, template, workspace.learned, cwd=workspace.directory,
                                          env=workspace.env)
            failures += [f"README.md:{example.line_number}: {example.request}\n    {p}" for p in problems]
        return len(examples)
    transcripts = contract.transcripts(block)
    if not transcripts:
        raise contract.ContractError(
            f"README.md:{block.line_number}: a {block.language} block with no '$ ' command and no "
            "JSON-RPC example: write it as a transcript or mark it <!-- not run: why -->"
        )
    for transcript in transcripts:
        problems = contract.check_transcript(transcript, workspace.learned, cwd=workspace.directory, env=workspace.env)
        failures += [f"README.md:{transcript.line_number}: $ {transcript.command}\n    {p}" for p in problems]
    return len(transcripts)


def test_readme_commands_not_run_exist_with_their_options(workspace: Workspace) -> None:
    """Blocks marked not to run: each command's program and options exist (checked through --help)."""
    failures: list[str] = []
    for block in readme_blocks():
        if block.not_run is None:
            continue
        if contract.is_rpc_block(block):
            for example in contract.rpc_examples(block):
                json.loads(example.request)
                contract.parse_shown_json(example.answer.removeprefix("error ").strip())
            continue
        commands = contract.commands_of(block)
        assert commands, f"README.md:{block.line_number}: a block marked not run shows no command"
        for command in commands:
            problems = contract.check_options(command, workspace.learned, cwd=workspace.directory,
                                              env=workspace.env, make_dir=REPOSITORY)
            failures += [f"README.md:{block.line_number}: {command}\n    {p}" for p in problems]
    assert not failures, "\n".join(failures)


def test_readme_config_is_the_first_validators_with_every_setting(workspace: Workspace) -> None:
    """The TOML block loads, names every setting, and resolves to what the testnet's first
    validator's own config resolves to (so each value shown is the default or that node's)."""
    blocks = [block for block in readme_blocks() if block.language == "toml"]
    assert blocks, "the README shows no node config"
    cluster = workspace.cluster
    own = node_config_path(cluster.directory, cluster.names[0])
    for block in blocks:
        mapped = Block(block.language, tuple(workspace.learned.places(line) for line in block.lines),
                       block.line_number, block.not_run, block.prose)
        path = contract.load_toml_block(mapped, own)
        try:
            shown = load_config(path)
        except ConfigError as error:
            pytest.fail(f"README.md:{block.line_number}: the config block does not load: {error}")
        named = set(_flatten_keys(tomllib.loads(path.read_text())))
        missing = [setting.path for setting in SETTINGS if setting.path not in named]
        assert not missing, f"README.md:{block.line_number}: settings missing from the config block: {missing}"
        # As make testnet writes it: this testnet has the README's observer, which that one lacks.
        expected = load_config(own, {"p2p.observers": []})
        differences = {key: (value, expected[key]) for key, value in shown.values.items() if expected[key] != value}
        assert not differences, (
            f"README.md:{block.line_number}: shown values that are neither the default nor the first validator's "
            f"(shown, actual): {differences}"
        )


def test_readme_json_blocks_have_the_shape_of_the_files_they_show() -> None:
    blocks = [block for block in readme_blocks() if block.language == "json"]
    for block in blocks:
        source = contract.last_path(block.prose, REPOSITORY)
        shown = contract.parse_shown_json("\n".join(block.lines))
        problems = contract.compare_json(shown, json.loads(source.read_text()), Substitutions())
        assert not problems, f"README.md:{block.line_number} against {source.name}: {problems}"


def _flatten_keys(document: dict[str, object], prefix: str = "") -> Iterator[str]:
    for key, value in document.items():
        if isinstance(value, dict):
            yield from _flatten_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
