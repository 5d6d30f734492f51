"""What a person may type: the conveniences (global options after the command, --version, hashes
with or without 0x, ``block latest``, encrypted and exposed key files), and odd input thrown at
every command's arguments and options, which must always end in one line and a documented exit
status, never a traceback."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mura.chain.keys import PASSPHRASE_VARIABLE, SigningKey, is_encrypted, load_key, save_key
from mura.cli import cli
from mura.cli.session import EXIT_USAGE

from .conftest import Mura
from .test_cli import assert_one_line_error, run_installed, unreachable_url

# --- conveniences -----------------------------------------------------------------------------------


def test_global_options_after_the_command(mura: Mura) -> None:
    treasury = mura.json("address", "--key", str(mura.treasury_key))["address"]
    after = CliRunner().invoke(cli, ["--rpc", unreachable_url(), "balance", treasury, "--json", "--rpc", mura.url])
    assert after.exit_code == 0, after.stderr
    assert after.stdout.startswith("{") and '"address": "' + treasury in after.stdout
    status = CliRunner().invoke(cli, ["status", "--rpc", mura.url])
    assert status.exit_code == 0 and re.search(r"^chain id\s+nishiawakura-testnet-1$", status.stdout, re.MULTILINE)


def test_version_comes_from_the_installed_package() -> None:
    from importlib.metadata import version

    result = run_installed("--version")
    assert result.returncode == 0 and result.stdout == f"mura {version('mura')}\n"


def test_hashes_with_or_without_0x_in_either_case_and_block_latest(mura: Mura, tmp_path: Path) -> None:
    alice = mura.json("keygen", "--out", str(tmp_path / "alice.key"))["address"]
    final = mura.json("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", "3", "--wait")
    bare = final["hash"][2:]
    for written in (bare, bare.upper(), "0x" + bare.upper(), "0X" + bare):
        assert mura.json("tx", written)["hash"] == final["hash"]
    assert mura.json("block", final["block_hash"][2:].upper())["height"] == final["block_height"]
    latest = mura.json("block", "latest")
    assert latest["height"] >= final["block_height"]
    assert mura.json("block", str(latest["height"]))["hash"] == latest["hash"]


def test_a_key_file_open_to_others_gets_one_warning(mura: Mura, tmp_path: Path) -> None:
    key_file = tmp_path / "alice.key"
    made = mura.json("keygen", "--out", str(key_file))
    key_file.chmod(0o644)
    result = mura("address", "--key", str(key_file))
    assert result.exit_code == 0 and made["address"] in result.stdout
    assert result.stderr == (f"mura: warning: key file {key_file} is readable by group and others; "
                             f"fix with: chmod 600 {key_file}\n")
    key_file.chmod(0o600)
    assert mura("address", "--key", str(key_file)).stderr == ""


def test_keygen_encrypt_asks_twice_and_the_key_is_asked_for_when_used(mura: Mura, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_VARIABLE, raising=False)
    key_file = tmp_path / "alice.key"
    runner = CliRunner()
    made = runner.invoke(cli, ["--rpc", mura.url, "keygen", "--encrypt", "--out", str(key_file)],
                         input="hunter22\nhunter22\n")
    assert made.exit_code == 0, made.stderr
    assert is_encrypted(key_file) and re.search(r"^encrypted\s+yes", made.stdout, re.MULTILINE)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = runner.invoke(cli, ["--rpc", mura.url, "address", "--key", str(key_file)], input="hunter22\n")
    assert shown.exit_code == 0 and re.search(r"^address\s+tnac1", shown.stdout, re.MULTILINE), shown.stderr
    wrong = runner.invoke(cli, ["--rpc", mura.url, "address", "--key", str(key_file)], input="hunter2\n")
    assert wrong.exit_code == EXIT_USAGE and wrong.stderr.splitlines()[-1].startswith("mura: error: wrong passphrase")
    none = runner.invoke(cli, ["--rpc", mura.url, "address", "--key", str(key_file)], input="")
    assert none.exit_code == EXIT_USAGE and "no passphrase was given" in none.stderr
    mismatch = runner.invoke(cli, ["--rpc", mura.url, "keygen", "--encrypt", "--out", str(tmp_path / "b.key")],
                             input="one\ntwo\n")
    assert mismatch.exit_code == EXIT_USAGE and not (tmp_path / "b.key").exists()


def test_an_encrypted_key_signs_with_the_passphrase_from_the_environment(mura: Mura, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "from the environment")
    key_file = tmp_path / "alice.key"
    alice = mura.json("keygen", "--encrypt", "--out", str(key_file))["address"]
    assert load_key(key_file, passphrase="from the environment")
    mura.json("send", "--key", str(mura.treasury_key), "--to", alice, "--amount", "10", "--wait")
    paid = mura.json("send", "--key", str(key_file), "--to", alice, "--amount", "4", "--wait")
    assert (paid["status"], paid["sender"]) == ("final", alice)
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "not it")
    wrong = mura("send", "--key", str(key_file), "--to", alice, "--amount", "4")
    assert_one_line_error(wrong, EXIT_USAGE, r"^mura: error: wrong passphrase for key file .*alice\.key")
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "")
    empty = mura("keygen", "--encrypt", "--out", str(tmp_path / "b.key"))
    assert_one_line_error(empty, EXIT_USAGE, rf"{PASSPHRASE_VARIABLE} is empty")


# --- odd input: one line, a documented exit status, never a traceback ----------------------------------------

ODD = [
    "", " ", "-", "--", "0", "-1", "-0", "1e3", "1E3", "nan", "NaN", "inf", "-inf", "1e400", "0x", "0x0", "1.5",
    str(2**64), str(2**64 - 1), str(2**64) + "NAC", "9" * 5000, "1" * 25 + ".5NAC", "٣", "１２", "12.50ＮＡＣ",  # noqa: RUF001 - full-width input is under test
    "ab" * 32, "0x" + "ab" * 32, "AB" * 31, "ab" * 33, "0x" + "zz" * 32, "tnac1", "tnac1qqqq", "TNAC1ABC", "nac1xyz",
    "latest", "LATEST", "héllo", "\u202e", "\x00", "a\nb", "😀", "http://", "/", ".", "../..",
]
ODD_TEXT = st.one_of(st.sampled_from(ODD), st.text(max_size=80),
                     st.integers(min_value=-(2**70), max_value=2**70).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr))


def check_outcome(result: Result, allowed: set[int]) -> None:
    """One stderr line starting with ``mura`` and an allowed status; no traceback, no internal error."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exit_code in allowed, (result.exit_code, output)
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mura"), result.stderr


def invoke(mura: Mura, arguments: list[str]) -> Result:
    return CliRunner().invoke(cli, ["--rpc", mura.url, *arguments])


FUZZ = settings(
    max_examples=int(os.environ.get("MURA_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def penniless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key file of an account with nothing and no role: whatever it signs is refused."""
    path = tmp_path_factory.mktemp("penniless") / "nobody.key"
    save_key(path, SigningKey.generate())
    return path


MAYBE_ODD = st.one_of(st.none(), ODD_TEXT)


def optional(option: str, value: str | None) -> list[str]:
    return [] if value is None else [option, value]


@FUZZ
@given(command=st.sampled_from(["send", "mint", "burn"]), to=ODD_TEXT, amount=ODD_TEXT, timeout=ODD_TEXT,
       nonce=ODD_TEXT, key=st.sampled_from(["penniless", "odd"]), odd_key=ODD_TEXT, wait=st.booleans(),
       asset=MAYBE_ODD, memo=MAYBE_ODD, positional=st.booleans())
def test_odd_input_to_signing_commands(mura: Mura, penniless: Path, command: str, to: str, amount: str, timeout: str,
                                       nonce: str, key: str, odd_key: str, wait: bool, asset: str | None,
                                       memo: str | None, positional: bool) -> None:
    arguments = [command, "--key", str(penniless) if key == "penniless" else odd_key, "--timeout", timeout,
                 "--nonce", nonce, *(["--wait"] if wait else []), *optional("--asset", asset)]
    arguments += ["--", amount] if positional else ["--amount", amount]
    if command == "send":
        arguments[1:1] = optional("--memo", memo)
    if command != "burn":
        arguments += [to] if positional else ["--to", to]
    # The only usable key holds nothing and may not mint or burn: nothing here may succeed.
    check_outcome(invoke(mura, arguments), {1, 2, 3})


@FUZZ
@given(command=st.sampled_from(["balance", "block", "tx", "address", "address --key", "address --prefix",
                                "keygen --prefix", "keygen --out", "status --rpc", "testnet --validators"]),
       value=ODD_TEXT)
def test_odd_input_to_every_other_command(mura: Mura, tmp_path_factory: pytest.TempPathFactory, command: str,
                                          value: str) -> None:
    name, *option = command.split()
    if name == "keygen":
        # Whatever --out names is written inside a directory of this test's own, never elsewhere.
        directory = tmp_path_factory.mktemp("keygen")
        if option == ["--out"]:
            arguments = [name, "--prefix", "tnac", "--out", str(directory / value.replace("/", "_").lstrip("."))]
        else:
            arguments = [name, "--out", str(directory / "k.key"), *option, value]
        allowed = {0, 1, 2, 3}
    elif name == "testnet":
        arguments = [name, "--no-run", "--dir", str(tmp_path_factory.mktemp("net")), *option, value]
        allowed = {0, 2}
    elif option == ["--prefix"]:
        arguments = [name, "ab" * 32, *option, value]
        allowed = {0, 2}
    else:
        arguments = [name, *option, value]
        allowed = {1, 2, 3} if name in ("tx", "status") else {0, 1, 2, 3}
    check_outcome(invoke(mura, arguments), allowed)


@FUZZ
@given(command=st.sampled_from(["holder approve", "holder revoke", "freeze", "unfreeze", "asset issue"]),
       asset=ODD_TEXT, account=ODD_TEXT, name=ODD_TEXT, decimals=ODD_TEXT, supply=ODD_TEXT, cap=MAYBE_ODD,
       registrar=MAYBE_ODD, expires=MAYBE_ODD, fixed=st.booleans())
def test_odd_input_to_asset_and_registrar_commands(mura: Mura, penniless: Path, command: str, asset: str, account: str,
                                                   name: str, decimals: str, supply: str, cap: str | None,
                                                   registrar: str | None, expires: str | None, fixed: bool) -> None:
    if command == "asset issue":
        arguments = ["asset", "issue", "--name", name, "--decimals", decimals, "--supply", supply,
                     *optional("--cap", cap), *optional("--registrar", registrar), *optional("--expires", expires),
                     *(["--fixed"] if fixed else []), "--key", str(penniless), "--", asset]
    else:
        arguments = [*command.split(), "--key", str(penniless), "--", asset, account]
    # The key has no role and registers nothing: nothing here may succeed.
    check_outcome(invoke(mura, arguments), {1, 2, 3})


#: Reading commands, with ``{value}`` where the odd text goes and ``{address}`` for a valid address.
READING = [
    "history {value}", "history {address} --cursor {value}", "history {address} --limit {value}",
    "balance {address} --height {value}", "balance --key {value}", "asset info {value}", "asset holders {value}",
    "asset holders NAC --height {value}", "asset holders NAC --cursor {value}", "asset holders NAC --limit {value}",
    "asset list --cursor {value}", "asset list --limit {value}",
]


@FUZZ
@given(template=st.sampled_from(READING), value=ODD_TEXT)
def test_odd_input_to_reading_commands(mura: Mura, template: str, value: str) -> None:
    address = "tnac1g9qwtm7lfuqzwdq3r6c3da4enkkm3rk6ngd93lacf63wkmyf6h2q00rd8t"
    words = [address if word == "{address}" else word for word in template.split()]
    check_outcome(invoke(mura, [value if word == "{value}" else word for word in words]), {0, 1, 2, 3})


def test_no_traceback_even_for_an_internal_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The last resort: an unexpected exception is one line, its traceback only with MURA_DEBUG=1."""
    import mura.cli.commands

    def broken(*arguments: object, **options: object) -> None:
        raise RuntimeError("a bug\nspread over lines")

    monkeypatch.setattr(mura.cli.commands, "save_key", broken)
    arguments = ["keygen", "--prefix", "tnac", "--out", str(tmp_path / "k.key")]
    monkeypatch.delenv("MURA_DEBUG", raising=False)
    quiet = CliRunner().invoke(cli, arguments)
    assert quiet.exit_code == 1
    assert quiet.stderr == ("mura: internal error: RuntimeError: a bug spread over lines "
                            "(set MURA_DEBUG=1 for the traceback)\n")
    monkeypatch.setenv("MURA_DEBUG", "1")
    loud = CliRunner().invoke(cli, arguments)
    assert loud.exit_code == 1 and "Traceback" in loud.stderr
    assert loud.stderr.splitlines()[-1].startswith("mura: internal")
