"""The genesis file: its JSON format, the loader that checks it, and the genesis block.

A genesis file names the network (chain id, address prefix), its ordered
validators, the accounts with the issuer role, and the assets the chain starts
with: each one's terms and opening balances. Every node builds block 0 from it,
and the hash of that block identifies the chain.

``parse_genesis`` reports every problem at once, each named by its field path
(``validators[2].public_key: expected 64 hex characters, got 10``), so an
operator fixes a file in one pass instead of one error per attempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from mura.chain.address import decode_address, encode_address, validate_prefix
from mura.chain.assets import (
    MAX_ASSET_NAME_LENGTH,
    MAX_DECIMALS,
    AssetTerms,
    TransferPolicy,
    asset_id_problem,
    asset_name_problem,
)
from mura.chain.block import MAX_BLOCK_BYTES, MAX_BLOCK_TRANSACTIONS, MAX_VALIDATORS, Block
from mura.chain.errors import InvalidAddress, InvalidGenesis
from mura.chain.governance import MAX_PROPOSAL_LIFETIME_BLOCKS, ValidatorRecord
from mura.chain.keys import PUBLIC_KEY_SIZE, sha256
from mura.chain.state import MAX_SUPPLY, ChainRules, GenesisAsset, StateChanges, build_genesis

_T = TypeVar("_T")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_PORT = re.compile(r"[0-9]{1,5}")
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,3}))?(?:[Zz]|\+00:00)"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SURROGATE = re.compile("[\ud800-\udfff]")
_DEFAULT_RULES = ChainRules(chain_id="")
#: Most assets one genesis declares.
MAX_GENESIS_ASSETS = 64


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    """One validator: who it is, its consensus key and where its peers reach it."""

    #: Operator's name, e.g. ``village-office``; also names its key file.
    name: str
    #: Raw 32-byte Ed25519 public key that signs its votes.
    public_key: bytes
    #: ``host:port`` of its peer endpoint.
    peer_address: str


@dataclass(frozen=True, slots=True)
class Genesis:
    """A network's starting point, as read from its genesis file."""

    #: The network's name; every transaction and block carries it.
    chain_id: str
    #: The part of this network's text addresses before the ``1``.
    address_prefix: str
    #: The genesis block's timestamp, in milliseconds since the Unix epoch.
    timestamp_ms: int
    #: The validators in PBFT order: the primary of view v is ``validators[v mod n]``.
    validators: tuple[ValidatorInfo, ...]
    #: Public keys of the accounts with the issuer role: they may issue new assets.
    issuers: tuple[bytes, ...]
    #: The assets the chain starts with, and their opening balances; the first is the
    #: network's default asset (what a wallet shows and sends when none is named).
    assets: tuple[GenesisAsset, ...]
    #: Largest total size of a block's encoded transactions.
    max_block_bytes: int
    #: Most transactions in one block.
    max_block_transactions: int
    #: Blocks a governance proposal stays open for approvals.
    proposal_lifetime_blocks: int = _DEFAULT_RULES.proposal_lifetime_blocks

    def rules(self) -> ChainRules:
        """The parameters every validator applies to every block."""
        return ChainRules(
            chain_id=self.chain_id,
            max_block_bytes=self.max_block_bytes,
            max_block_transactions=self.max_block_transactions,
            proposal_lifetime_blocks=self.proposal_lifetime_blocks,
        )

    @property
    def default_asset(self) -> str | None:
        """The id of the first asset, which commands and methods use when none is named."""
        return self.assets[0].terms.asset if self.assets else None

    def validator_keys(self) -> tuple[bytes, ...]:
        """The validators' public keys, in PBFT order."""
        return tuple(validator.public_key for validator in self.validators)

    def validator_records(self) -> tuple[ValidatorRecord, ...]:
        """The first validator set as the state keeps it (set(1))."""
        return tuple(ValidatorRecord(v.public_key, v.name, v.peer_address) for v in self.validators)

    def to_document(self) -> dict[str, Any]:
        """The JSON value of this genesis, fields in the documented order."""
        return {
            "chain_id": self.chain_id,
            "address_prefix": self.address_prefix,
            "genesis_time": format_genesis_time(self.timestamp_ms),
            "validators": [
                {"name": v.name, "public_key": v.public_key.hex(), "peer_address": v.peer_address}
                for v in self.validators
            ],
            "issuers": [encode_address(issuer, self.address_prefix) for issuer in self.issuers],
            "assets": [self._asset_document(asset) for asset in self.assets],
            "limits": {
                "max_block_bytes": self.max_block_bytes,
                "max_block_transactions": self.max_block_transactions,
            },
            "governance": {"proposal_lifetime_blocks": self.proposal_lifetime_blocks},
        }

    def _asset_document(self, asset: GenesisAsset) -> dict[str, Any]:
        terms = asset.terms
        document: dict[str, Any] = {
            "id": terms.asset,
            "name": terms.name,
            "decimals": terms.decimals,
            "issuer": encode_address(terms.issuer, self.address_prefix),
            "supply": "reissuable" if terms.reissuable else "fixed",
        }
        if terms.cap:
            document["cap"] = terms.cap
        if terms.registrar != terms.issuer:
            document["registrar"] = encode_address(terms.registrar, self.address_prefix)
        document["policy"] = terms.policy.value
        if terms.expiry_ms:
            document["expiry"] = format_genesis_time(terms.expiry_ms)
        document["allocations"] = [
            {"address": encode_address(address, self.address_prefix), "amount": amount}
            for address, amount in asset.allocations
        ]
        return document

    def to_json(self) -> str:
        """The genesis file's text: the same genesis always gives the same bytes."""
        return json.dumps(self.to_document(), indent=2, ensure_ascii=False) + "\n"

    def document_hash(self) -> bytes:
        """SHA-256 of the canonical JSON (sorted keys, no spaces): every setting, not only the state."""
        canonical = json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return sha256(canonical.encode())


def genesis_block(genesis: Genesis) -> tuple[Block, StateChanges]:
    """Block 0 and the state it starts the chain with; one genesis, one block hash."""
    return build_genesis(
        chain_id=genesis.chain_id,
        timestamp_ms=genesis.timestamp_ms,
        validators=genesis.validator_records(),
        issuers=genesis.issuers,
        assets=genesis.assets,
        document_hash=genesis.document_hash(),
    )


# --- loading -----------------------------------------------------------------


class _NotStrictJson(ValueError):
    """JSON that Python would accept but another parser might read differently."""


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins; two nodes must never
    # read one file as two different genesis documents.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _NotStrictJson(f"key {key!r} appears twice in one object")
        document[key] = value
    return document


def _refuse_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not a JSON number")


def load_genesis(path: Path | str) -> Genesis:
    """Read and check the genesis file at ``path``; any problem raises ``InvalidGenesis``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidGenesis([f"{path}: file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidGenesis([f"{path}: cannot be read: {error}"]) from None
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise InvalidGenesis(
            [f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"]
        ) from None
    except _NotStrictJson as error:
        raise InvalidGenesis([f"{path}: invalid JSON: {error}"]) from None
    except RecursionError:
        raise InvalidGenesis([f"{path}: invalid JSON: arrays or objects nested too deeply"]) from None
    surrogate = _lone_surrogate(document)
    if surrogate is not None:
        escape = f"\\u{ord(surrogate):04x}"
        raise InvalidGenesis([f"{path}: invalid JSON: {escape} is half of a UTF-16 pair, not a character"])
    return parse_genesis(document)


def _lone_surrogate(value: object) -> str | None:
    """The first code point in ``value``'s text (keys too) that UTF-8 cannot encode, or None.

    JSON's ``\\ud800`` escapes one half of a UTF-16 pair; Python keeps it, other parsers
    replace or refuse it, and the genesis hash (of UTF-8 text) could not be computed.
    """
    # A loop, not recursion: whatever depth the JSON parser took, this takes too.
    unread = [value]
    while unread:
        item = unread.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                return found.group()
        elif isinstance(item, dict):
            unread += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            unread += item
    return None


def parse_genesis(document: object) -> Genesis:
    """Check a decoded genesis document and return it; raises ``InvalidGenesis``
    listing every problem found, each prefixed by its field path."""
    report = _Report()
    # Addresses are checked against the prefix, and expiry times against the genesis
    # time, so both are read first, quietly: their own problems are reported once,
    # with the other top-level fields.
    fields = document if isinstance(document, dict) else {}
    prefix = _read_prefix(fields.get("address_prefix"), "", _Report())
    genesis_time_ms = _read_time(fields.get("genesis_time"), "", _Report())
    top = _read_record(
        document, "", report, _top_level_readers(prefix, genesis_time_ms), optional=("limits", "governance")
    )
    if top is None or report.problems:
        raise InvalidGenesis(report.problems)
    # No problem was reported, so every reader returned a value.
    limits = top.get("limits") or _read_limits({}, "limits", report)
    governance = top.get("governance") or _read_governance({}, "governance", report)
    return Genesis(
        chain_id=top["chain_id"],
        address_prefix=top["address_prefix"],
        timestamp_ms=top["genesis_time"],
        validators=top["validators"],
        issuers=top["issuers"],
        assets=top["assets"],
        max_block_bytes=limits["max_block_bytes"],
        max_block_transactions=limits["max_block_transactions"],
        proposal_lifetime_blocks=governance["proposal_lifetime_blocks"],
    )


# --- genesis time --------------------------------------------------------------


def parse_genesis_time(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 UTC time such as
    ``2026-11-23T00:00:00Z``; raises ``ValueError`` saying what is wrong."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"expected an RFC 3339 UTC time like 2026-11-23T00:00:00Z, got {_shown(text)}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as error:
        raise ValueError(f"not a real date and time: {error}") from None
    if moment < _EPOCH:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    milliseconds = int((match.group(7) or "").ljust(3, "0"))
    return (moment - _EPOCH) // timedelta(milliseconds=1) + milliseconds


def format_genesis_time(timestamp_ms: int) -> str:
    """The RFC 3339 UTC text of ``timestamp_ms``; ``parse_genesis_time`` reads it back."""
    moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    fraction = f".{timestamp_ms % 1000:03d}" if timestamp_ms % 1000 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


# --- checking fields -------------------------------------------------------------


class _Report:
    """The problems found so far, each prefixed by the path of its field."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'genesis'}: {message}")


#: Reads one field: returns its value, or reports why it is wrong and returns None.
_Reader = Callable[[object, str, _Report], Any]


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "text", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    """``value`` as JSON, cut short so that a problem stays on one line."""
    # A half of a UTF-16 pair shows as its escape: the problem must stay printable as UTF-8.
    text = json.dumps(value, ensure_ascii=False, default=repr).encode(errors="backslashreplace").decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _complete(record: dict[str, Any] | None) -> bool:
    return record is not None and None not in record.values()


def _read_record(
    value: object, path: str, report: _Report, readers: dict[str, _Reader], *, optional: Sequence[str] = ()
) -> dict[str, Any] | None:
    """An object with the fields of ``readers`` (all required but ``optional``)
    and no others. Returns each present field as read (None where invalid),
    or None when ``value`` is not an object."""
    if not isinstance(value, dict):
        report.problem(path, f"expected an object, got {_kind(value)}")
        return None
    parent = f"{path}." if path else ""
    for name in value:
        if name not in readers:
            report.problem(f"{parent}{name}", "unknown field")
    record: dict[str, Any] = {}
    for name, reader in readers.items():
        if name in value:
            record[name] = reader(value[name], parent + name, report)
        elif name not in optional:
            report.problem(parent + name, "missing")
            record[name] = None
    return record


def _read_list(
    value: object, path: str, report: _Report, *, minimum: int = 0, maximum: int | None = None
) -> list[Any] | None:
    if not isinstance(value, list):
        report.problem(path, f"expected an array, got {_kind(value)}")
        return None
    if maximum is not None and not minimum <= len(value) <= maximum:
        report.problem(path, f"must hold {minimum} to {maximum} entries, got {len(value)}")
        return None
    return value


def _report_duplicates(values: Sequence[object], path_template: str, report: _Report) -> None:
    """Each value may appear once; a repeat names where it first appeared.
    ``path_template`` is a field path with ``{index}`` for the entry's index."""
    first: dict[object, int] = {}
    for index, value in enumerate(values):
        if value is not None and value in first:
            earlier = path_template.format(index=first[value])
            report.problem(path_template.format(index=index), f"duplicate of {earlier}")
        elif value is not None:
            first[value] = index


def _matching(pattern: str, rule: str) -> _Reader:
    """A reader of text that matches ``pattern`` entirely; ``rule`` says so in words."""
    compiled = re.compile(pattern, re.ASCII | re.DOTALL)

    def read(value: object, path: str, report: _Report) -> str | None:
        if isinstance(value, str) and compiled.fullmatch(value):
            return value
        report.problem(path, f"must be {rule}, got {_shown(value)}")
        return None

    return read


def _integer(minimum: int, maximum: int, rule: str) -> _Reader:
    """A reader of an integer within ``[minimum, maximum]``."""

    def read(value: object, path: str, report: _Report) -> int | None:
        # bool is a subclass of int, and JSON's true must not pass for 1.
        if type(value) is int and minimum <= value <= maximum:
            return value
        report.problem(path, f"must be {rule}, got {_shown(value)}")
        return None

    return read


def _checked_text(check: Callable[[str], _T]) -> _Reader:
    """A reader of text that ``check`` accepts; its error message is the problem."""

    def read(value: object, path: str, report: _Report) -> _T | None:
        if not isinstance(value, str):
            report.problem(path, f"expected text, got {_kind(value)}")
            return None
        try:
            return check(value)
        except (InvalidAddress, ValueError) as error:
            report.problem(path, str(error))
            return None

    return read


def _valid_prefix(prefix: str) -> str:
    validate_prefix(prefix)
    return prefix


_read_prefix = _checked_text(_valid_prefix)
_read_time = _checked_text(parse_genesis_time)


def _read_public_key(value: object, path: str, report: _Report) -> bytes | None:
    if isinstance(value, str) and _HEX_KEY.fullmatch(value):
        return bytes.fromhex(value)
    if not isinstance(value, str):
        got = _kind(value)
    elif len(value) != PUBLIC_KEY_SIZE * 2:
        got = str(len(value))
    else:
        got = "non-hex characters"
    report.problem(path, f"expected {PUBLIC_KEY_SIZE * 2} hex characters, got {got}")
    return None


def _read_peer_address(value: object, path: str, report: _Report) -> str | None:
    if not isinstance(value, str):
        report.problem(path, f"expected host:port as text, got {_kind(value)}")
        return None
    host, _, port = value.rpartition(":")
    if not host or any(character.isspace() for character in host):
        report.problem(path, f"expected host:port, got {_shown(value)}")
    elif not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        report.problem(path, f"port must be 1 to 65535, got {_shown(port)}")
    else:
        return value
    return None


def _read_records(
    items: list[Any] | None, path: str, report: _Report, readers: dict[str, _Reader], *, unique: Sequence[str]
) -> list[dict[str, Any] | None] | None:
    """Objects with the fields of ``readers``; the ``unique`` fields may not repeat."""
    if items is None:
        return None
    records = [_read_record(item, f"{path}[{index}]", report, readers) for index, item in enumerate(items)]
    for field in unique:
        values = [record.get(field) if record else None for record in records]
        _report_duplicates(values, f"{path}[{{index}}].{field}", report)
    return records


def _read_validators(value: object, path: str, report: _Report) -> tuple[ValidatorInfo, ...] | None:
    """1 to 256 validators, in PBFT order, with distinct names and keys."""
    items = _read_list(value, path, report, minimum=1, maximum=MAX_VALIDATORS)
    records = _read_records(items, path, report, _VALIDATOR_FIELDS, unique=("name", "public_key"))
    if records is None or not all(_complete(record) for record in records):
        return None
    return tuple(ValidatorInfo(**record) for record in records if record is not None)


def _read_issuers(value: object, path: str, report: _Report, *, prefix: str | None) -> tuple[bytes, ...] | None:
    """Distinct addresses of this network."""
    items = _read_list(value, path, report)
    if items is None:
        return None
    read_address = _address_reader(prefix)
    issuers = [read_address(item, f"{path}[{index}]", report) for index, item in enumerate(items)]
    _report_duplicates(issuers, f"{path}[{{index}}]", report)
    return None if None in issuers else tuple(issuers)


def _read_allocations(
    value: object, path: str, report: _Report, *, prefix: str | None
) -> tuple[tuple[bytes, int], ...] | None:
    """Positive amounts to distinct addresses, totalling at most the largest supply."""
    readers = {"address": _address_reader(prefix), "amount": _integer(1, MAX_SUPPLY, "a positive integer")}
    records = _read_records(_read_list(value, path, report), path, report, readers, unique=("address",))
    if records is None:
        return None
    total = sum(record.get("amount") or 0 for record in records if record)
    if total > MAX_SUPPLY:
        report.problem(path, f"amounts total {total}, more than the largest possible supply {MAX_SUPPLY}")
    if not all(_complete(record) for record in records):
        return None
    return tuple((record["address"], record["amount"]) for record in records if record is not None)


def _read_asset_id(value: object, path: str, report: _Report) -> str | None:
    problem = asset_id_problem(value) if isinstance(value, str) else f"expected text, got {_kind(value)}"
    if problem is None:
        return cast(str, value)
    report.problem(path, problem)
    return None


def _read_asset_name(value: object, path: str, report: _Report) -> str | None:
    """What ``issue_asset`` accepts as a name: 1 to 64 printable characters, not only spaces."""
    if isinstance(value, str) and asset_name_problem(value) is None:
        return value
    rule = f"1 to {MAX_ASSET_NAME_LENGTH} printable characters, not only spaces"
    report.problem(path, f"must be {rule}, got {_shown(value)}")
    return None


def _asset_readers(prefix: str | None) -> dict[str, _Reader]:
    return {
        "id": _read_asset_id,
        "name": _read_asset_name,
        "decimals": _integer(0, MAX_DECIMALS, f"an integer from 0 to {MAX_DECIMALS}"),
        "issuer": _address_reader(prefix),
        "supply": _matching("reissuable|fixed", '"reissuable" or "fixed"'),
        "cap": _integer(1, MAX_SUPPLY, "a positive integer"),
        "registrar": _address_reader(prefix),
        "policy": _matching("open|restricted", '"open" or "restricted"'),
        "expiry": _read_time,
        "allocations": partial(_read_allocations, prefix=prefix),
    }


def _read_asset(
    value: object, path: str, report: _Report, *, prefix: str | None, genesis_time_ms: int | None
) -> GenesisAsset | None:
    """One asset's terms and opening balances; the fields with defaults may be left out
    (no cap, the issuer as registrar, open, no expiry, no opening balance)."""
    record = _read_record(
        value, path, report, _asset_readers(prefix), optional=("cap", "registrar", "policy", "expiry", "allocations")
    )
    if record is None:
        return None
    # Checked with whichever fields were read, so that they are reported with the fields' own problems.
    _check_supply(record, path, report)
    expiry_ms = record.get("expiry")
    if expiry_ms is not None and genesis_time_ms is not None and expiry_ms <= genesis_time_ms:
        report.problem(f"{path}.expiry", f"must be after genesis_time ({format_genesis_time(genesis_time_ms)})")
    if not _complete(record):
        return None
    terms = AssetTerms(
        asset=record["id"],
        name=record["name"],
        decimals=record["decimals"],
        issuer=record["issuer"],
        reissuable=record["supply"] == "reissuable",
        cap=record.get("cap", 0),
        registrar=record.get("registrar", record["issuer"]),
        policy=TransferPolicy(record.get("policy", "open")),
        expiry_ms=record.get("expiry", 0),
    )
    return GenesisAsset(terms, record.get("allocations", ()))


def _check_supply(record: dict[str, Any], path: str, report: _Report) -> None:
    """A cap only on a reissuable asset and not below the opening balances; a fixed
    supply that is not zero. Fields that could not be read are left out."""
    supply = record.get("supply")
    cap = record.get("cap")
    allocations = record.get("allocations", ())
    total = None if allocations is None else sum(amount for _, amount in allocations)
    if cap and supply == "fixed":
        report.problem(f"{path}.cap", "only a reissuable asset has a cap: a fixed supply is its own cap")
    elif cap and total is not None and total > cap:
        report.problem(f"{path}.allocations", f"amounts total {total}, more than the cap {cap}")
    if supply == "fixed" and total == 0:
        report.problem(f"{path}.allocations", "an asset whose supply is fixed needs a positive opening supply")


def _read_assets(
    value: object, path: str, report: _Report, *, prefix: str | None, genesis_time_ms: int | None
) -> tuple[GenesisAsset, ...] | None:
    """0 to 64 assets with distinct ids."""
    items = _read_list(value, path, report, minimum=0, maximum=MAX_GENESIS_ASSETS)
    if items is None:
        return None
    assets = [
        _read_asset(item, f"{path}[{index}]", report, prefix=prefix, genesis_time_ms=genesis_time_ms)
        for index, item in enumerate(items)
    ]
    # Ids as read (quietly: their problems are reported above), so that only valid ones are compared.
    ids = [_read_asset_id(item.get("id"), "", _Report()) if isinstance(item, dict) else None for item in items]
    _report_duplicates(ids, f"{path}[{{index}}].id", report)
    return None if None in assets else tuple(cast(GenesisAsset, asset) for asset in assets)


def _address_reader(prefix: str | None) -> _Reader:
    if prefix is None:
        # The prefix is invalid and already reported: there is nothing to check against.
        return _checked_text(lambda address: None)
    return _checked_text(lambda address: decode_address(address, prefix))


def _read_limits(value: object, path: str, report: _Report) -> dict[str, int]:
    """Block limits, each defaulting to ``ChainRules``'s, and at most what the
    wire format carries so that any block within them can be decoded."""
    limits = {"max_block_bytes": MAX_BLOCK_BYTES, "max_block_transactions": MAX_BLOCK_TRANSACTIONS}
    readers = {name: _integer(1, most, f"a positive integer at most {most}") for name, most in limits.items()}
    record = _read_record(value, path, report, readers, optional=tuple(readers)) or {}
    return {name: record.get(name) or getattr(_DEFAULT_RULES, name) for name in limits}


def _read_governance(value: object, path: str, report: _Report) -> dict[str, int]:
    """Governance parameters, each defaulting to ``ChainRules``'s."""
    most = MAX_PROPOSAL_LIFETIME_BLOCKS
    readers = {"proposal_lifetime_blocks": _integer(1, most, f"a positive integer at most {most}")}
    record = _read_record(value, path, report, readers, optional=tuple(readers)) or {}
    return {name: record.get(name) or getattr(_DEFAULT_RULES, name) for name in readers}


_read_slug = _matching("[a-z0-9-]{1,64}", "1 to 64 lowercase letters, digits or '-'")
_VALIDATOR_FIELDS: dict[str, _Reader] = {
    "name": _read_slug,
    "public_key": _read_public_key,
    "peer_address": _read_peer_address,
}


def _top_level_readers(prefix: str | None, genesis_time_ms: int | None) -> dict[str, _Reader]:
    return {
        "chain_id": _read_slug,
        "address_prefix": _read_prefix,
        "genesis_time": _read_time,
        "validators": _read_validators,
        "issuers": partial(_read_issuers, prefix=prefix),
        "assets": partial(_read_assets, prefix=prefix, genesis_time_ms=genesis_time_ms),
        "limits": _read_limits,
        "governance": _read_governance,
    }
