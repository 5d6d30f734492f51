"""Tests for node.py's configuration: TOML, command-line flags, and every refusal naming its field."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mura.genesis.testnet import TestnetLayout, generate_testnet, node_config_path
from mura.node import SETTINGS, ConfigError, Node, add_setting_flags, load_config


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
        ('[consensus]\nmax_block_transactions = "many"\n', "setting consensus.max_block_transactions: expected an integer"),
        ("[consensus]\nmax_block_transactions = 0\n", "setting consensus.max_block_transactions: must be positive"),
        ("[mempool]\nrebroadcast_after_ms = -1\n", "setting mempool.rebroadcast_after_ms: must be positive"),
        ("[mempool]\nrebroadcast_after = 5\n", "unknown setting 'mempool.rebroadcast_after'"),
        ("[sync\n", "is not valid TOML"),
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


def test_proposal_cap_within_the_genesis_limit(layout: TestnetLayout) -> None:
    limit = layout.genesis.rules().max_block_transactions
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    Node(load_config(path, {"consensus.max_block_transactions": limit}))


def test_invalid_proposal_cap_above_the_genesis_limit(layout: TestnetLayout) -> None:
    limit = layout.genesis.rules().max_block_transactions
    path = node_config_path(layout.directory, layout.genesis.validators[0].name)
    with pytest.raises(ConfigError, match=f"consensus.max_block_transactions: {limit + 1} is above the genesis limit of {limit}"):
        Node(load_config(path, {"consensus.max_block_transactions": limit + 1}))
