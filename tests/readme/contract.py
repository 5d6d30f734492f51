"""The README's examples as a contract: read them, run them, and check the output's shape.

The README is the single source of truth: nothing here names a command, a field or a
value the README shows. What the README may contain, and how each kind is checked:

- A fenced ```` ```text ```` or ```` ```sh ```` block of *transcripts*: lines ``$ command``
  each followed by the output it prints (stdout and stderr as a terminal shows them). The
  command runs for real, in README order, against a running testnet, in one working
  directory laid out as the README assumes (``testnet/`` and ``.venv/`` there), with the
  venv's ``bin`` on ``PATH`` (as when the venv is activated). Its exit status must be 0,
  or the one a trailing shell comment states (``$ mura ... # exit 1``), and its output must
  have the shape shown (see *Shape*). A command whose output is not shown must print nothing.
- A fenced ```` ```text ```` block of *JSON-RPC examples*: a request line, then a line
  ``→ RESULT`` or ``→ error ERROR``. Each request is sent with the last ``curl`` form the
  prose before the block states (a code span such as ``curl -s localhost:8700 -d '...'``, the
  request taking the place of ``...``); the answer must be a JSON-RPC 2.0 response with
  the request's id whose ``result`` (or ``error``) has the shape shown.
- A fenced ```` ```toml ```` block: a node config. It must load with the node's own
  ``load_config``, name every setting the node has, and (placed beside the testnet's
  first validator's config) resolve to exactly the settings that config resolves to, so
  every value it shows is the default or that validator's own.
- A fenced ```` ```json ```` block: the shape of the file named by the last path in
  backticks before it (e.g. ``genesis/examples/nishiawakura-testnet.json``).

**Not run.** An HTML comment ``<!-- not run: REASON -->`` on the line before a block marks
it as not to run (a command that runs until Ctrl-C, or for minutes). Its commands are
still checked without running them: the program must exist and every ``--option`` it is
given must appear in its ``--help`` (or in the help of the command that help refers to,
"see CMD --help"); a ``make TARGET VAR=...`` line must name a target
``make -n`` accepts and variables the Makefile reads, and the commands ``make -n`` prints
are checked in the same way. Commands in such blocks may be written without ``$ ``.
A command run with bare ``python`` is refused: outside the venv it has no Mura, so the
README writes ``.venv/bin/python``.

**Shape.** Output is compared line by line, whitespace runs counting as one space. Values
are typed wildcards: ``0x`` hex, bare hex of 16 digits or more, Bech32 addresses (the
prefix must match), times, decimals and integers; everything else (labels, words,
punctuation, the number of lines) must match exactly. A value ending in ``...`` is
abbreviated and matches any value of its type; a line (or JSON string) whose text ends in
``...`` is cut short, and the output must begin with what is shown. Output that is JSON (the whole output, or
a line starting with ``{`` or ``[``) is compared as JSON: the same keys at every level,
the same types; a string of one word with no value in it (a name, a status, a kind) matches
any such word, other strings compare as text lines do; a list shown with elements must be
non-empty and every element must have the shape of the first shown; ``[...]`` is any
list; a JSON-RPC error's ``code`` must be equal.

**Substitutions.** The README's fixed places are mapped to the test's: ``127.0.0.1:870i``
and ``localhost:870i`` (RPC) and ``127.0.0.1:970i`` (peers) to the testnet's free ports;
the ``mura`` command's default node (``MURA_RPC``) to validator 0; absolute paths under
``/tmp/`` to the same paths under the working directory. Each matched output also
teaches substitutions: a full address, hash or key the README shows -> the one the run
printed, and an integer shown as a block height (after ``block`` or ``height``, or under a
``height``/``block_height`` key) -> the height printed (put in place of an integer that is
an argument of its own or a JSON-RPC param, never of an option's value). Later commands and
requests use them, and ``PREFIX...`` in a command stands for the one learned value starting with
``PREFIX``; so README examples that make a key and then pay its address run for real.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^```(?P<language>[\w-]*)\s*$")
EXIT_COMMENT = re.compile(r"\s+#\s*exit\s+(?P<status>\d+)\s*$")
ARROW = "→"
ELLIPSIS = "..."
#: Fence languages the contract checks; a block of any other is refused unless marked not run.
LANGUAGES = ("text", "sh", "toml", "json")
#: How long one command may run before the example counts as failed.
COMMAND_TIMEOUT_SECONDS = 60.0

# Values, tried in this order at each position. An abbreviated value ("..." after it) may be
# shorter than a full one: `0x43e0...`, `9f69...`, `tnac1...`.
_VALUE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("time", r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z| UTC)?"),
    ("bytes", r"0x[0-9a-fA-F]*(?=\.\.\.)|0x[0-9a-fA-F]+"),
    # Before addresses (a key's hex can look like one); a letter, so long integers stay integers.
    ("hex", r"(?=[0-9]*[a-fA-F])[0-9a-fA-F]{2,}(?=\.\.\.)|(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,}"),
    ("address", r"[a-z]{1,16}1[02-9ac-hj-np-z]*(?=\.\.\.)|[a-z]{1,16}1[02-9ac-hj-np-z]{6,}"),
    ("decimal", r"-?\d+\.\d+"),
    ("integer", r"-?\d+"),
)
_VALUE = re.compile(
    r"(?<![\w.])(?:" + "|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _VALUE_PATTERNS)
    + r")(?P<abbreviated>\.\.\.)?(?![\w])"
)
#: Values worth learning: they name one thing (an account, a transaction, a block).
_LEARNED_KINDS = ("bytes", "address", "hex")
_HEIGHT_WORDS = ("block", "height")
_HEIGHT_KEYS = ("height", "block_height")


class ContractError(Exception):
    """The README breaks its own conventions (not an example that fails: a malformed one)."""


# --- reading the README --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block of the README."""

    #: The fence's language tag (``text``, ``sh``, ``toml``, ``json``, or empty).
    language: str
    #: The lines inside the fence.
    lines: tuple[str, ...]
    #: Line number (1-based) of the first line inside the fence.
    line_number: int
    #: The ``<!-- not run: ... -->`` reason, or None when the block runs.
    not_run: str | None
    #: The README's text between the previous block and this one.
    prose: str


def read_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown document, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    prose: list[str] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            prose.append(lines[index])
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ContractError(f"README.md:{index + 1}: code block never closed")
        previous = next((line for line in reversed(prose) if line.strip()), "")
        marker = NOT_RUN.search(previous)
        if marker is not None and not marker.group("reason"):
            raise ContractError(f"README.md:{index}: a not-run marker needs a reason")
        blocks.append(
            Block(opening.group("language"), tuple(lines[start:end]), start + 1,
                  marker.group("reason") if marker else None, "\n".join(prose))
        )
        prose = []
        index = end + 1
    return blocks


@dataclass(frozen=True, slots=True)
class Transcript:
    """``$ command`` and the output shown under it."""

    command: str
    output: tuple[str, ...]
    #: The exit status the README states (``# exit N``), 0 when it states none.
    exit_status: int
    line_number: int


@dataclass(frozen=True, slots=True)
class RpcExample:
    """A JSON-RPC request line and the ``→`` answer shown for it."""

    request: str
    #: The text after the arrow: a JSON result, or ``error`` and a JSON error object.
    answer: str
    line_number: int


def transcripts(block: Block) -> list[Transcript]:
    """The ``$ `` commands of a block with their output; trailing blank lines dropped."""
    found: list[Transcript] = []
    command: str | None = None
    output: list[str] = []
    start = 0

    def close() -> None:
        if command is None:
            return
        while output and not output[-1].strip():
            output.pop()
        stated = EXIT_COMMENT.search(command)
        status = int(stated.group("status")) if stated else 0
        text = command[: stated.start()] if stated else command
        found.append(Transcript(text.strip(), tuple(output), status, start))

    for offset, line in enumerate(block.lines):
        if line.startswith("$ "):
            close()
            command, output, start = line[2:], [], block.line_number + offset
        elif command is not None:
            output.append(line)
        elif line.strip():
            raise ContractError(f"README.md:{block.line_number + offset}: output before any '$ ' command")
    close()
    return found


def rpc_examples(block: Block) -> list[RpcExample]:
    """Request and answer pairs: each request line is followed by its ``→`` line."""
    lines = [(block.line_number + offset, line) for offset, line in enumerate(block.lines) if line.strip()]
    if len(lines) % 2:
        raise ContractError(f"README.md:{block.line_number}: JSON-RPC examples come as request and '→' lines")
    examples = []
    for (number, request), (_, answer) in zip(lines[::2], lines[1::2], strict=False):
        if not answer.startswith(ARROW):
            raise ContractError(f"README.md:{number + 1}: expected '{ARROW} ...' after the request")
        examples.append(RpcExample(request.strip(), answer[len(ARROW):].strip(), number))
    return examples


def is_rpc_block(block: Block) -> bool:
    return any(line.startswith(ARROW) for line in block.lines)


def commands_of(block: Block) -> list[str]:
    """The commands of a block that is not run: its ``$ `` lines, or every line of a sh block
    (none for JSON-RPC examples, whose requests and answers are checked as JSON only)."""
    prompted = [line[2:] for line in block.lines if line.startswith("$ ")]
    if prompted or block.language != "sh":
        return prompted
    return [line for line in block.lines if line.strip() and not line.lstrip().startswith("#")]


def curl_template(prose: str) -> list[str]:
    """The ``curl ... '...'`` code span the prose before a JSON-RPC block states, as words."""
    spans = [span for span in re.findall(r"`([^`]+)`", prose) if span.startswith("curl ") and f"'{ELLIPSIS}'" in span]
    if not spans:
        raise ContractError("a JSON-RPC example block needs a `curl ... '...'` form stated before it")
    return shlex.split(spans[-1])


def last_path(prose: str, root: Path) -> Path:
    """The last file named in backticks in ``prose`` that exists under ``root``."""
    spans: list[str] = re.findall(r"`([^`\s]+)`", prose)
    for span in reversed(spans):
        if (root / span).is_file():
            return root / span
    raise ContractError("a JSON block needs the file it shows named in backticks before it")


# --- shapes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """A value found in a line: its kind, its text (without ``...``), whether it was abbreviated."""

    kind: str
    text: str
    abbreviated: bool
    #: True for an integer shown as a block height.
    height: bool = False


def tokenize(line: str) -> tuple[str, list[Value]]:
    """A line's template (values replaced by ``<kind>``, whitespace runs by one space) and its values."""
    line = " ".join(line.split())
    template: list[str] = []
    values: list[Value] = []
    position = 0
    for match in _VALUE.finditer(line):
        kind = next(name for name, _ in _VALUE_PATTERNS if match.group(name) is not None)
        before = line[position:match.start()]
        template.append(before)
        text = match.group(kind)
        tag = kind
        if kind == "address":
            tag = f"address:{text[: text.rindex('1')]}"
        preceding = "".join(template).split()
        height = kind == "integer" and bool(preceding) and preceding[-1].lower() in _HEIGHT_WORDS
        template.append(f"<{tag}>")
        values.append(Value(kind, text, match.group("abbreviated") is not None, height))
        position = match.end()
    template.append(line[position:])
    return "".join(template), values


@dataclass
class Substitutions:
    """What the README's fixed places and values stand for in this run."""

    #: ``host:port`` the README names -> the test's.
    ports: dict[str, str] = field(default_factory=dict)
    #: The working directory standing in for ``/`` of absolute ``/tmp/`` paths.
    root: Path | None = None
    #: A full value the README shows -> the one this run printed in its place.
    values: dict[str, str] = field(default_factory=dict)
    #: A block height the README shows -> the one this run printed.
    heights: dict[str, str] = field(default_factory=dict)

    def places(self, text: str) -> str:
        """Ports and absolute temporary paths mapped to this run's."""
        for readme, ours in self.ports.items():
            text = re.sub(rf"(?<![\w.]){re.escape(readme)}(?!\d)", ours, text)
        if self.root is not None:
            text = re.sub(r"(?<![\w./])/tmp/", f"{self.root}/tmp/", text)
        return text

    def resolve(self, text: str) -> str:
        """A README value as this run knows it: learned, expanded from ``PREFIX...``, or as shown."""
        if text.endswith(ELLIPSIS):
            prefix = text[: -len(ELLIPSIS)]
            matches = {ours for readme, ours in self.values.items() if readme.startswith(prefix)}
            if len(matches) != 1:
                raise ContractError(f"{text}: {'no' if not matches else 'more than one'} value seen before starts so")
            return matches.pop()
        return self.values.get(text, text)

    def command(self, command: str) -> list[str]:
        """A README command as this run must type it."""
        words = shlex.split(self.places(command), comments=True)
        pairs = zip(["", *words], words, strict=False)
        return [self._word(word, option_value=before.startswith("-")) for before, word in pairs]

    def _word(self, word: str, *, option_value: bool) -> str:
        if word.isdigit():
            # A height is an argument of its own (`mura block 20`); `--amount 20` is an amount.
            return word if option_value else self.heights.get(word, word)
        return _VALUE.sub(lambda match: self._value(match), word)

    def _value(self, match: re.Match[str]) -> str:
        if match.group("integer") is not None or match.group("decimal") is not None or match.group("time") is not None:
            return match.group(0)
        return self.resolve(match.group(0))

    def request(self, request: Any) -> Any:
        """A JSON-RPC request's params with learned values and heights in place."""
        if isinstance(request, dict):
            return {key: self.request(value) for key, value in request.items()}
        if isinstance(request, list):
            return [self.request(item) for item in request]
        if isinstance(request, str):
            return self.resolve(request) if _VALUE.fullmatch(request) else request
        if isinstance(request, int) and not isinstance(request, bool):
            return int(self.heights.get(str(request), str(request)))
        return request

    def learn(self, readme: Value, ours: Value) -> None:
        if readme.abbreviated:
            return
        if readme.kind in _LEARNED_KINDS:
            self.values[readme.text] = ours.text
        elif readme.height:
            self.heights[readme.text] = ours.text


def compare_line(expected: str, actual: str, learned: Substitutions) -> str | None:
    """None when ``actual`` has the shape of ``expected`` (learning its values), else the problem."""
    if expected.lstrip().startswith(("{", "[")):
        try:
            shown = parse_shown_json(expected)
        except ValueError:
            pass
        else:
            try:
                got = json.loads(actual)
            except ValueError:
                return f"expected JSON, got {actual!r}"
            problems = compare_json(shown, got, learned)
            return "; ".join(problems) if problems else None
    template, values = tokenize(expected)
    got_template, got_values = tokenize(actual)
    if template.endswith(ELLIPSIS) and got_template.startswith(template[: -len(ELLIPSIS)]):
        got_template = template  # text cut short: what is shown must begin the line
    if template != got_template:
        return f"expected the shape {template!r}, got {got_template!r} (line {actual!r})"
    for readme, ours in zip(values, got_values, strict=False):
        learned.learn(readme, ours)
    return None


def compare_output(expected: Sequence[str], actual: Sequence[str], learned: Substitutions) -> list[str]:
    """Problems with ``actual`` output lines against the ``expected`` ones (empty: same shape)."""
    actual = list(actual)
    while actual and not actual[-1].strip():
        actual.pop()
    whole = "\n".join(expected)
    if whole.lstrip().startswith(("{", "[")) and len(expected) > 1:
        try:
            shown = parse_shown_json(whole)
        except ValueError:
            pass
        else:
            try:
                got = json.loads("\n".join(actual))
            except ValueError:
                return [f"expected JSON output, got {actual[:3]!r}..."]
            return compare_json(shown, got, learned)
    if len(expected) != len(actual):
        return [f"expected {len(expected)} lines, got {len(actual)}: {actual!r}"]
    problems = []
    for number, (shown_line, got_line) in enumerate(zip(expected, actual, strict=False), 1):
        problem = compare_line(shown_line, got_line, learned)
        if problem:
            problems.append(f"line {number}: {problem}")
    return problems


def parse_shown_json(text: str) -> Any:
    """JSON as the README shows it, where ``[...]`` stands for any list."""
    return json.loads(text.replace(f"[{ELLIPSIS}]", f'["{ELLIPSIS}"]'))


def compare_json(shown: Any, got: Any, learned: Substitutions, path: str = "$") -> list[str]:
    """Problems with ``got`` against the shape of ``shown``: keys, types, text shapes."""
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {got!r}"]
        problems = []
        missing, extra = sorted(set(shown) - set(got)), sorted(set(got) - set(shown))
        if missing:
            problems.append(f"{path}: missing keys {missing}")
        if extra:
            problems.append(f"{path}: keys not shown {extra}")
        for key in shown.keys() & got.keys():
            if key == "code" and shown[key] != got[key]:
                problems.append(f"{path}.code: expected {shown[key]!r}, got {got[key]!r}")
            elif key in _HEIGHT_KEYS and _is_int(shown[key]) and _is_int(got[key]):
                learned.heights[str(shown[key])] = str(got[key])
            else:
                problems += compare_json(shown[key], got[key], learned, f"{path}.{key}")
        return problems
    if isinstance(shown, list):
        if not isinstance(got, list):
            return [f"{path}: expected a list, got {got!r}"]
        if not shown or shown == [ELLIPSIS]:
            return []
        if not got:
            return [f"{path}: expected a non-empty list"]
        return [problem for index, item in enumerate(got) for problem in
                compare_json(shown[0], item, learned, f"{path}[{index}]")]
    if isinstance(shown, bool) or shown is None:
        return [] if type(got) is type(shown) else [f"{path}: expected {type(shown).__name__}, got {got!r}"]
    if _is_int(shown):
        return [] if _is_int(got) else [f"{path}: expected an integer, got {got!r}"]
    if isinstance(shown, float):
        is_number = isinstance(got, (int, float)) and not isinstance(got, bool)
        return [] if is_number else [f"{path}: expected a number, got {got!r}"]
    if not isinstance(got, str):
        return [f"{path}: expected text, got {got!r}"]
    if _is_word(shown) and _is_word(got):
        return []  # a name, a status, a kind: data, any word will do
    problem = compare_line(shown, got, learned)
    return [f"{path}: {problem}"] if problem else []


def _is_word(text: str) -> bool:
    """Text of one word and no typed value (its words and punctuation count, like a label's)."""
    return bool(text) and " " not in text and not _VALUE.search(text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- running --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """What a command did."""

    status: int
    output: tuple[str, ...]


_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.DOTALL)


def run(words: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Run:
    """Run ``words`` as a user at a terminal would see it: stdout and stderr together.
    Leading ``NAME=value`` words set the command's environment, as in a shell."""
    words = list(words)
    environment = dict(env)
    while words and (assignment := _ASSIGNMENT.fullmatch(words[0])):
        environment[assignment.group("name")] = assignment.group("value")
        words.pop(0)
    try:
        completed = subprocess.run(
            words, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT_SECONDS, check=False,
        )
    except FileNotFoundError:
        return Run(127, (f"{words[0]}: command not found",))
    except subprocess.TimeoutExpired:
        return Run(-1, (f"still running after {COMMAND_TIMEOUT_SECONDS:.0f} s",))
    return Run(completed.returncode, tuple(completed.stdout.decode(errors="replace").splitlines()))


def check_transcript(example: Transcript, learned: Substitutions, *, cwd: Path, env: Mapping[str, str]) -> list[str]:
    """Run one ``$ `` example; the problems found (empty: it holds)."""
    try:
        words = learned.command(example.command)
    except (ContractError, ValueError) as error:
        return [str(error)]
    problems = _refuse_bare_python(words)
    if problems:
        return problems
    result = run(words, cwd=cwd, env=env)
    if result.status != example.exit_status:
        problems.append(f"exit status {result.status}, expected {example.exit_status}; output: {list(result.output)}")
    expected = [learned.places(line) for line in example.output]
    return problems + compare_output(expected, result.output, learned)


def check_rpc(example: RpcExample, template: Sequence[str], learned: Substitutions, *, cwd: Path,
              env: Mapping[str, str]) -> list[str]:
    """Send one JSON-RPC example's request with the README's curl form; the problems found."""
    try:
        request = learned.request(json.loads(example.request))
        shown = parse_shown_json(example.answer.removeprefix("error ").strip())
    except (ContractError, ValueError) as error:
        return [f"cannot run the example as shown: {error}"]
    words = [learned.places(word) for word in template]
    words = [json.dumps(request, separators=(",", ":")) if word == ELLIPSIS else word for word in words]
    result = run(words, cwd=cwd, env=env)
    if result.status != 0:
        return [f"curl exit status {result.status}: {list(result.output)}"]
    try:
        response = json.loads("\n".join(result.output))
    except ValueError:
        return [f"not JSON: {list(result.output)}"]
    if not isinstance(response, dict) or response.get("jsonrpc") != "2.0" or response.get("id") != request.get("id"):
        return [f"not a JSON-RPC 2.0 response to id {request.get('id')!r}: {response!r}"]
    key = "error" if example.answer.startswith("error ") else "result"
    if key not in response:
        return [f"expected {key}, got {response!r}"]
    return compare_json(shown, response[key], learned, f"${key}")


def _refuse_bare_python(words: Sequence[str]) -> list[str]:
    if words and words[0] in ("python", "python3"):
        return [f"'{words[0]}' outside the venv has no Mura: write .venv/bin/python"]
    return []


def check_options(command: str, learned: Substitutions, *, cwd: Path, env: Mapping[str, str],
                  make_dir: Path) -> list[str]:
    """Check a command that is not run: it exists and takes every ``--option`` it is given."""
    words = learned.command(command)
    problems = _refuse_bare_python(words)
    if problems or not words:
        return problems
    if words[0] == "make":
        return _check_make(words[1:], learned, cwd=cwd, env=env, make_dir=make_dir)
    program = list(_program_words(words))
    options = _options(words)
    if not options:
        return _check_program(program, cwd=cwd, env=env)
    helped = _help(program, cwd=cwd, env=env)
    if helped.status != 0:
        return [f"{shlex.join(program)} --help: exit status {helped.status}: {list(helped.output)[-3:]}"]
    text = "\n".join(helped.output)
    known = set(re.findall(r"--[\w-]+", text))
    unknown = [option for option in options if option not in known]
    # A command passing further options on says whose help lists them: "(see CMD --help)".
    referred = re.search(r"see\s+([^()]+?)\s+--help", " ".join(text.split()))
    if unknown and referred:
        further = _help(shlex.split(referred.group(1)), cwd=cwd, env=env)
        if further.status == 0:
            known |= set(re.findall(r"--[\w-]+", "\n".join(further.output)))
    return [f"{shlex.join(program)} has no option {option}" for option in unknown if option not in known]


#: ``--help`` answers by program, cwd and PATH: several commands share a program, and each
#: answer costs a Python start-up.
_HELP_ANSWERS: dict[tuple[tuple[str, ...], Path, str], Run] = {}


def _help(program: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Run:
    key = (tuple(program), cwd, env.get("PATH", ""))
    if key not in _HELP_ANSWERS:
        _HELP_ANSWERS[key] = run([*program, "--help"], cwd=cwd, env=env)
    return _HELP_ANSWERS[key]


def _check_program(program: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> list[str]:
    """A command with no options to check: its program, and the module it runs, exist."""
    executable = program[0]
    found = (cwd / executable).exists() if "/" in executable else shutil.which(executable, path=env.get("PATH"))
    if not found:
        return [f"{executable}: command not found"]
    if len(program) > 2 and program[1] == "-m":
        finds = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({program[2]!r}) is None)"
        answer = run([executable, "-c", finds], cwd=cwd, env=env)
        if answer.status != 0:
            return [f"{executable} has no module {program[2]}"]
    return []


def _program_words(words: Sequence[str]) -> Iterator[str]:
    """The program and its subcommands or module: the words before the first option."""
    for word in words:
        if word.startswith("-") and word != "-m":
            return
        yield word


def _options(words: Sequence[str]) -> list[str]:
    return [word.split("=", 1)[0] for word in words if word.startswith("--") and len(word) > 2]


def _check_make(arguments: Sequence[str], learned: Substitutions, *, cwd: Path, env: Mapping[str, str],
                make_dir: Path) -> list[str]:
    """``make TARGET VAR=value``: a target make accepts, variables the Makefile reads, and the
    commands it would run checked in turn."""
    makefile = (make_dir / "Makefile").read_text()
    problems = [
        f"the Makefile does not read {name}"
        for name in (argument.split("=", 1)[0] for argument in arguments if "=" in argument)
        if not re.search(rf"\$[({{]{re.escape(name)}[)}}]", makefile)
    ]
    dry = run(["make", "--no-print-directory", "-n", "-C", str(make_dir), *arguments], cwd=cwd, env=env)
    if dry.status != 0:
        return [*problems, f"make -n {shlex.join(arguments)}: exit status {dry.status}: {list(dry.output)[-3:]}"]
    for line in dry.output:
        if line.startswith(".venv/bin/"):
            problems += check_options(line, learned, cwd=cwd, env=env, make_dir=make_dir)
    return problems


def load_toml_block(block: Block, beside: Path) -> Path:
    """Write a config block beside an existing config, so its relative paths resolve the same."""
    path = beside.parent / "readme-example.toml"
    path.write_text("\n".join(block.lines) + "\n")
    return path


def environment(bin_directory: Path, rpc_url: str) -> dict[str, str]:
    """A user's environment with the venv activated and the default node mapped to the test's."""
    env = dict(os.environ)
    env["PATH"] = f"{bin_directory}{os.pathsep}{env.get('PATH', '')}"
    env["MURA_RPC"] = rpc_url
    env.pop("PYTHONPATH", None)
    return env
