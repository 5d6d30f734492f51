"""Tests for node.py's configuration: TOML, command-line flags, and every refusal naming its field."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mura.chain.keys import SigningKey, load_key, save_key
from mura.chain.store import Store, VoteStore
from mura.config import (
    SETTINGS,
    ConfigError,
    add_setting_flags,
    check_listen_addresses,
    format_default,
    load_config,
)
from mura.genesis.format import genesis_block
from mura.genesis.testnet import TestnetLayout, generate_testnet, node_config_path
from mura.node import Node


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    return generate_testnet(tmp_path_factory.mktemp("testnet"), validators=1)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert {setting.path: config[setting.path] for setting in SETTINGS} == {
        setting.path: setting.default for setting in SETTINGS
    }
    assert config["sync.verify_signatures"] is False


def test_file_values_and_overrides(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[consensus]\nmax_block_transactions = 300\n[sync]\nverify_signatures = true\n')
    config = load_config(path, {"consensus.max_block_transactions": 400})
    assert config["consensus.max_block_transactions"] == 400
    assert config["sync.verify_signatures"] is True


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sync]\nverify_signatures = 1\n", "setting sync.verify_signatures: expected true or false, got 1"),
        ('[consensus]\nmax_block_transactions = "many"\n',
         "setting consensus.max_block_transactions: expected an integer"),
        ("[consensus]\nmax_block_transactions = 0\n", "setting consensus.max_block_transactions: must be positive"),
        ("[mempool]\nrebroadcast_after_ms = -1\n", "setting mempool.rebroadcast_after_ms: must be positive"),
        ("[mempool]\nrebroadcast_after = 5\n", "unknown setting 'mempool.rebroadcast_after'"),
        ("[mempool]\nexpire_after_seconds = -1\n", "setting mempool.expire_after_seconds: must not be negative"),
        ("[sync\n", "is not valid TOML"),
        ('[p2p]\nobservers = ["zz"]\n', "setting p2p.observers: 'zz' is not a public key (64 hex digits)"),
        ("[rpc]\nwebsocket_queue = 0\n", "setting rpc.websocket_queue: must be positive"),
        ("[rpc]\nmax_subscriptions_per_websocket = -1\n",
         "setting rpc.max_subscriptions_per_websocket: must be positive"),
        ('[rpc]\nmax_websockets = "many"\n', "setting rpc.max_websockets: expected an integer"),
        ("[rpc]\nmax_websockets = 10\nmax_websockets_per_source = 11\n",
         "setting rpc.max_websockets_per_source: 11 is more than rpc.max_websockets (10); it must be at most that"),
        ("[rpc]\nmax_waiting_per_source = 257\n",
         "setting rpc.max_waiting_per_source: 257 is more than rpc.max_waiting (256); it must be at most that"),
        ("[rpc]\nmax_waiting_per_source = 0\n", "setting rpc.max_waiting_per_source: must be positive"),
    ],
)
def test_invalid_settings_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(config_file(tmp_path, text))


def test_boolean_settings_are_flags_with_a_negative_form() -> None:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    assert getattr(parser.parse_args(["--sync-verify-signatures"]), "sync.verify_signatures") is True
    assert getattr(parser.parse_args(["--no-sync-verify-signatures"]), "sync.verify_signatures") is False
    assert getattr(parser.parse_args([]), "sync.verify_signatures") is None


async def test_proposal_cap_within_the_genesis_limit(layout: TestnetLayout, tmp_path: Path) -> None:
    limit = layout.genesis.rules().max_block_transactions
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    overrides = {"data_dir": str(tmp_path / "data"), "vote_record": str(tmp_path / "votes")}
    await Node(load_config(path, overrides | {"consensus.max_block_transactions": limit})).stop()


async def test_invalid_vote_record_entry_names_the_record_and_leaves_nothing_open(
    layout: TestnetLayout, tmp_path: Path
) -> None:
    """A vote in the record that cannot be read stops the node with one line naming the
    record; the chain's data and the record it opened first are closed again."""
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    overrides = {"data_dir": str(tmp_path / "data"), "vote_record": str(tmp_path / "votes")}
    config = load_config(path, overrides)
    await Node(config).stop()
    genesis, _ = genesis_block(layout.genesis)
    key = load_key(config.path("key_file"))
    with VoteStore(config.vote_record_path(), chain=genesis.hash, validator=key.public_key) as record:
        record.save_vote(1, b"not a vote")
    with pytest.raises(ConfigError, match=r"^vote_record: .*vote"):
        Node(config)
    # Closed: this process can open both again.
    Store(config.path("data_dir")).close()
    VoteStore(config.vote_record_path(), chain=genesis.hash, validator=key.public_key).close()


def test_invalid_proposal_cap_above_the_genesis_limit(layout: TestnetLayout) -> None:
    limit = layout.genesis.rules().max_block_transactions
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    message = f"consensus.max_block_transactions: {limit + 1} is above the genesis limit of {limit}"
    with pytest.raises(ConfigError, match=message):
        Node(load_config(path, {"consensus.max_block_transactions": limit + 1}))


@pytest.mark.parametrize("setting", ["p2p.listen", "rpc.listen"])
async def test_invalid_listen_address_in_use_names_the_setting(
    layout: TestnetLayout, tmp_path: Path, setting: str
) -> None:
    """A port taken between the node's first check and its start stops it with one line naming
    the setting and the holder."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        overrides = {
            "data_dir": str(tmp_path / "data"),
            "vote_record": str(tmp_path / "votes"),
            "p2p.listen": "127.0.0.1:0",
            "rpc.listen": "127.0.0.1:0",
            setting: f"127.0.0.1:{port}",
        }
        node = Node(load_config(node_config_path(layout.directory, layout.genesis.validators[0].name), overrides))
        try:
            with pytest.raises(ConfigError) as refused:
                await node.start()
            assert str(refused.value).startswith(f"{setting} 127.0.0.1:{port} is in use by process {os.getpid()} (")
        finally:
            await node.stop()


def test_vote_record_lives_beside_the_key_unless_configured(layout: TestnetLayout, tmp_path: Path) -> None:
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    config = load_config(path)
    assert config.vote_record_path() == config.path("key_file").with_suffix(".votes")
    assert config.vote_record_path().parent != config.path("data_dir").parent / "data"
    assert load_config(path, {"vote_record": str(tmp_path / "v")}).vote_record_path() == tmp_path / "v"


def run_node(
    *arguments: str, command: tuple[str, ...] = (sys.executable, "-m", "mura.node")
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *arguments], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "command", [(sys.executable, "-m", "mura.node"), (str(Path(sys.executable).parent / "mura"), "node", "run")]
)
def test_help_shows_every_setting_with_its_default(command: tuple[str, ...]) -> None:
    result = run_node("--help", command=command)
    assert result.returncode == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps lines at spaces
    for setting in SETTINGS:
        default = format_default(setting.default)
        assert setting.flag in text
        assert f"default: {default})" in text, setting.path
    assert '--rpc-listen LISTEN JSON-RPC address (default: "127.0.0.1:8700")' in text
    assert "--sync-verify-signatures, --no-sync-verify-signatures check every transaction signature" in text
    assert "(default: false)" in text


def test_format_default_as_in_node_toml() -> None:
    assert [format_default(value) for value in ("data", "", 1000, False, True, [], ["a"])] == [
        '"data"', '""', "1000", "false", "true", "[]", '["a"]'
    ]


def test_invalid_flag_is_one_line() -> None:
    result = run_node("--rpc-max-batch", "many")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "python -m mura.node: argument --rpc-max-batch: invalid int value: 'many' (--help lists every setting)\n"
    )


@pytest.mark.parametrize("setting", ["p2p.listen", "rpc.listen"])
def test_invalid_port_held_by_another_process_one_line_and_nothing_opened(
    layout: TestnetLayout, tmp_path: Path, setting: str
) -> None:
    """A real node process whose port this process holds: one line naming the port and the
    holder, exit status 2, and the node opened nothing (no data directory, no log line)."""
    config = node_config_path(layout.directory, layout.genesis.validators[0].name)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = {"p2p.listen": "127.0.0.1:0", "rpc.listen": "127.0.0.1:0", setting: f"127.0.0.1:{port}"}
        result = run_node(
            "--config", str(config), "--data-dir", str(tmp_path / "data"), "--vote-record", str(tmp_path / "votes"),
            "--p2p-listen", flags["p2p.listen"], "--rpc-listen", flags["rpc.listen"],
            "--consensus-empty-block-interval-ms", "200",
        )
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mura-node: {setting} 127.0.0.1:{port} is in use by process {os.getpid()} (")
    assert "pytest" in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "votes").exists()


def test_invalid_same_address_for_peers_and_rpc() -> None:
    config = load_config(None, {"p2p.listen": "127.0.0.1:18999", "rpc.listen": "127.0.0.1:18999"})
    with pytest.raises(ConfigError, match=r"^p2p.listen and rpc.listen are both 127.0.0.1:18999$"):
        check_listen_addresses(config)
    check_listen_addresses(load_config(None, {"p2p.listen": "127.0.0.1:0", "rpc.listen": "127.0.0.1:0"}))


def test_invalid_cors_origin_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"setting rpc.cors_origins: 'https://wallet.example/' is not an origin"):
        load_config(config_file(tmp_path, '[rpc]\ncors_origins = ["https://wallet.example/"]\n'))
    config = load_config(config_file(tmp_path, '[rpc]\ncors_origins = ["https://wallet.example", "*"]\n'))
    assert config["rpc.cors_origins"] == ["https://wallet.example", "*"]


def test_invalid_allowed_host_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"setting rpc.allowed_hosts: 'https://node.example' is not a host name"):
        load_config(config_file(tmp_path, '[rpc]\nallowed_hosts = ["https://node.example"]\n'))
    assert load_config(None)["rpc.allowed_hosts"] == ["localhost"]
    config = load_config(config_file(tmp_path, '[rpc]\nallowed_hosts = ["node.village.example", "localhost"]\n'))
    assert config["rpc.allowed_hosts"] == ["node.village.example", "localhost"]


def test_invalid_observer_with_a_validator_key_names_the_validator_and_leaves_nothing_open(
    layout: TestnetLayout, tmp_path: Path
) -> None:
    validator = layout.genesis.validators[0]
    path = node_config_path(layout.directory, validator.name)
    config = load_config(path, {"role": "observer", "data_dir": str(tmp_path / "data")})
    refusal = f'^role: "observer", but key_file .* is the key of validator {validator.name}'
    with pytest.raises(ConfigError, match=refusal):
        Node(config)
    Store(config.path("data_dir")).close()
    assert not config.vote_record_path().exists()


async def test_observer_and_validator_outside_the_set_follow_without_a_vote(
    layout: TestnetLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key no validator set holds: as an observer it opens no vote record and its replica
    can never sign; as a validator it keeps its record and says it follows until added."""
    caplog.set_level(logging.INFO, logger="mura.node")
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    key_file = tmp_path / "outsider.key"
    save_key(key_file, SigningKey.generate(), label="outsider")
    common = {"key_file": str(key_file), "p2p.listen": "127.0.0.1:0", "rpc.listen": "127.0.0.1:0"}
    observer = Node(load_config(path, common | {"role": "observer", "data_dir": str(tmp_path / "observer")}))
    try:
        assert observer.vote_store is None and not observer.replica.member
        assert observer.replica.key.public_key != observer.key.public_key
        await observer.start()
        assert "an observer" in caplog.text and "never votes" in caplog.text
        status = observer.status()
        assert (status.role, status.voting) == ("observer", False)
    finally:
        await observer.stop()
    assert not key_file.with_suffix(".votes").exists()
    validator = Node(load_config(path, common | {"data_dir": str(tmp_path / "validator")}))
    try:
        assert validator.vote_store is not None and validator.replica.key.public_key == validator.key.public_key
        await validator.start()
        assert "follows the chain as an observer, without a vote, until a governance change adds it" in caplog.text
        assert validator.status().voting is False
    finally:
        await validator.stop()
