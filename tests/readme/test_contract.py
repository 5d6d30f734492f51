"""The README contract's own rules: what it reads from Markdown, what shapes it accepts and
refuses, and what it learns (no processes: each check here is on text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mura.tests.readme.contract import (
    ContractError,
    Substitutions,
    commands_of,
    compare_json,
    compare_output,
    curl_template,
    read_blocks,
    rpc_examples,
    tokenize,
    transcripts,
)

ADDRESS = "tnac1g6k3d8w803xa9254cntu68fv5qdsnsprscxap5t7anqkgx05urrq9u78jg"
OTHER_ADDRESS = "tnac1697xtl73vz9aeq36anw3w9y6vgu8lr5qf3nnlw5w0n4ng022dk0q4hs5jv"
HASH = "0x6562abd910da6e612683017339f481579a7d9008d3cc07ea0cf425991927292a"
OTHER_HASH = "0xc8bb4a8eae88fcac4f90002a4756e9ca52fc90e22af08b0d2ae51820df945612"

DOCUMENT = f"""# Title

Text.

```text
$ mura send --to {ADDRESS} --amount 1   # exit 1
mura: error: refused
$ mura status
height  16
```

The examples below use `curl -s localhost:8700 -d '...'`.

```text
{{"jsonrpc":"2.0","id":1,"method":"chain_status"}}
→ {{"height":1}}
```

<!-- not run: runs until Ctrl-C -->
```sh
make testnet   # the network
```
"""


def test_blocks_transcripts_exit_statuses_and_markers() -> None:
    blocks = read_blocks(DOCUMENT)
    assert [block.language for block in blocks] == ["text", "text", "sh"]
    assert [block.not_run for block in blocks] == [None, None, "runs until Ctrl-C"]
    first = transcripts(blocks[0])
    assert [(example.command, example.exit_status, example.output) for example in first] == [
        (f"mura send --to {ADDRESS} --amount 1", 1, ("mura: error: refused",)),
        ("mura status", 0, ("height  16",)),
    ]
    assert first[1].line_number == 8
    [rpc] = rpc_examples(blocks[1])
    assert (rpc.request, rpc.answer) == ('{"jsonrpc":"2.0","id":1,"method":"chain_status"}', '{"height":1}')
    assert curl_template(blocks[1].prose) == ["curl", "-s", "localhost:8700", "-d", "..."]
    assert commands_of(blocks[2]) == ["make testnet   # the network"]


def test_invalid_marker_without_reason() -> None:
    with pytest.raises(ContractError, match="needs a reason"):
        read_blocks("<!-- not run: -->\n```sh\nmake test\n```\n")


def test_invalid_output_before_any_command() -> None:
    with pytest.raises(ContractError, match="output before any"):
        transcripts(read_blocks("```sh\nmake test\n```\n")[0])


def test_values_are_typed_wildcards_and_labels_are_not() -> None:
    learned = Substitutions()
    shown = ["transaction  " + HASH, "amount       1250 (12.50 NAC)", "time  2026-11-23 09:20:21.561 UTC"]
    assert compare_output(shown, [f"transaction {OTHER_HASH}", "amount 7 (0.07 NAC)",
                                  "time 2027-01-01 00:00:00.000 UTC"], learned) == []
    assert compare_output(shown[:1], ["hash  " + OTHER_HASH], learned)  # another label
    assert compare_output(shown[1:2], ["amount 1250 (12.50 EUR)"], learned)  # another word
    assert compare_output(shown[1:2], ["amount 1250"], learned)  # another structure
    assert compare_output(shown[1:2], ["amount 12.5 (12.50 NAC)"], learned)  # a decimal for an integer
    assert compare_output(shown, shown[:2], learned)  # a line missing


def test_addresses_keep_their_prefix_and_abbreviations_match_any_value() -> None:
    learned = Substitutions()
    assert compare_output([f"to {ADDRESS}"], [f"to {OTHER_ADDRESS}"], learned) == []
    assert compare_output([f"to {ADDRESS}"], ["to nac1qz46h2at4w46h2at4w46h2at4w46h2at4w4"], learned)
    assert compare_output(["to tnac1g6k3...", "key 9f69..."], [f"to {ADDRESS}", "key " + "ab" * 32], learned) == []
    assert tokenize("head 0x43e0a2aa...")[0] == "head <bytes>"
    assert compare_output(["JSON-RPC 2.0 of a Mura node. ..."], ["JSON-RPC 2.0 of a Mura node. Bytes are hex."],
                          learned) == []
    assert compare_output(["JSON-RPC 2.0 of a Mura node. ..."], ["JSON-RPC 2.0 of a node."], learned)


def test_json_keys_and_types() -> None:
    learned = Substitutions()
    shown = {"height": 20, "hash": "0xdd9d...", "syncing": False, "validators": ["tnac1hrlk..."], "methods": ["..."],
             "name": "village-office"}
    good = {"height": 3, "hash": HASH, "syncing": True, "validators": [ADDRESS, OTHER_ADDRESS], "methods": [],
            "name": "forestry-cooperative"}
    assert compare_json(shown, good, learned) == []
    assert compare_json(shown, {**good, "extra": 1}, learned) == ["$: keys not shown ['extra']"]
    assert compare_json(shown, {key: value for key, value in good.items() if key != "hash"}, learned)
    assert compare_json(shown, {**good, "syncing": 0}, learned)
    assert compare_json(shown, {**good, "validators": []}, learned)
    assert compare_json(shown, {**good, "validators": [HASH]}, learned)
    assert compare_json({"code": -32020}, {"code": -32021}, learned)


def test_learned_values_and_heights_carry_to_later_commands() -> None:
    learned = Substitutions(ports={"127.0.0.1:8703": "127.0.0.1:40003"}, root=Path("/work/run"))
    shown = [f"to {ADDRESS}", f"transaction  {HASH}", "status final in block 20 at index 0"]
    assert compare_output(shown, [f"to {OTHER_ADDRESS}", f"transaction {OTHER_HASH}",
                                  "status final in block 7 at index 0"], learned) == []
    assert learned.command("mura --rpc http://127.0.0.1:8703 send --to tnac1g6k3... --amount 20") == [
        "mura", "--rpc", "http://127.0.0.1:40003", "send", "--to", OTHER_ADDRESS, "--amount", "20"
    ]
    assert learned.command(f"mura tx {HASH}") == ["mura", "tx", OTHER_HASH]
    assert learned.command("mura block 20") == ["mura", "block", "7"]
    assert learned.command("mura testnet --dir /tmp/net") == ["mura", "testnet", "--dir", "/work/run/tmp/net"]
    assert learned.request({"params": ["0x6562abd9...", 20]}) == {"params": [OTHER_HASH, 7]}
    with pytest.raises(ContractError, match="no value seen before"):
        learned.command("mura balance tnac1zzzz...")
