"""The terms file of ``mura bond issue --terms FILE``: a bond's terms in TOML or JSON (chosen by
the file's extension, ``.toml`` or ``.json``), read into an ``IssueBond`` body.

Every problem in the file is found before anything is signed and reported at once, each
with the name of its field. The fields:

===============  =========  ==================================================================
field            required   value
===============  =========  ==================================================================
id               yes        the bond's asset id (``NISHI-GREEN-1``)
name             yes        its display name
units            yes        whole units issued (the bond's fixed supply), credited to the issuer
settlement       yes        the asset coupons and the redemption are paid in (``JPYT``)
face             yes        one unit's face value in whole units of the settlement asset, as
                            text (``"10000"``, ``"100.00"``) or an integer; never a float
rate             yes        the annual coupon rate as a percentage in text (``"0.455%"``), at
                            most 4 decimals (the chain counts millionths: 0.0001 %)
frequency        yes        regular coupons a year: 1, 2, 4, 12, or annual, semiannual,
                            quarterly, monthly
coupons          yes        coupon payment times, increasing (``[]`` for none)
maturity         yes        when every unit is redeemed at face value
issue            no         the issue date interest accrues from (default: now)
first_period     no         ``"regular"``, or the odd first period's length in days; default:
                            computed from the issue date and the first coupon (see
                            ``bond_dates.is_regular_first_period``)
paying           no         the account coupons and the redemption are paid from; one other
                            than the issuer signs its consent to the terms: the issuer gives
                            its key file here, or its signature as ``paying_consent``
paying_consent   no         that signature, 0x and hex (``mura bond consent`` makes it)
proceeds         no         the account an offering's proceeds go to
registrar        no         the account that approves holders and freezes accounts
policy           no         ``restricted`` (default: only approved holders) or ``open``
use_of_proceeds  no         what the money is for (``"forest road repair"``)
green            no         true for a green bond (default false)
===============  =========  ==================================================================

Times are RFC 3339 with ``Z`` or an offset (``2027-03-20T00:00:00+09:00``; in TOML also
unquoted), or durations from now (``90s``, ``10m``, ``2h``, ``30d``). Accounts are addresses or
key files (a relative path is read from the terms file's folder); each defaults to the issuer.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mura.chain.address import decode_address
from mura.chain.assets import asset_id_problem, asset_name_problem
from mura.chain.bonds import (
    FREQUENCIES,
    MAX_COUPONS,
    MAX_FIRST_PERIOD_DAYS,
    MAX_LABEL_LENGTH,
    RATE_SCALE,
    label_problem,
)
from mura.chain.codec import MAX_INT
from mura.chain.errors import InvalidAddress, InvalidKeyFile
from mura.chain.keys import SIGNATURE_SIZE, is_encrypted, load_key
from mura.chain.transaction import IssueBond
from mura.cli.bond_dates import (
    actual_days,
    describe_value,
    format_moment,
    is_duration,
    is_regular_first_period,
    read_moment,
)
from mura.cli.session import EXIT_USAGE, CommandError, quoted

#: The words ``frequency`` takes, and the coupons a year each stands for.
FREQUENCY_WORDS = {"annual": 1, "semiannual": 2, "quarterly": 4, "monthly": 12}
#: Every field a terms file may hold, in the order problems are reported.
FIELDS = (
    "id", "name", "units", "settlement", "face", "rate", "frequency", "coupons", "maturity", "issue",
    "first_period", "paying", "paying_consent", "proceeds", "registrar", "policy", "use_of_proceeds", "green",
)  # fmt: skip
REQUIRED = ("id", "name", "units", "settlement", "face", "rate", "frequency", "coupons", "maturity")
#: Largest terms file read: terms fit in a few hundred bytes, even with 120 coupon times.
MAX_TERMS_FILE_BYTES = 64 * 1024
#: Largest key file read for its public key (key files are well under a kilobyte).
_MAX_KEY_FILE_BYTES = 64 * 1024
_PUBLIC_KEY = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(rf"0x([0-9a-fA-F]{{{2 * SIGNATURE_SIZE}}})")
#: The decimal places of a percentage the chain's millionths can hold exactly.
_RATE_DECIMALS = 4
_PERCENT = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,30}))?\s*%")
_DISPLAY_AMOUNT = re.compile(r"([0-9]{1,30})(?:\.([0-9]{1,30}))?")


class TermsError(CommandError):
    """A terms file that cannot be read, or whose terms are wrong; ``problems`` lists each."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        super().__init__(f"{source}: {count}{'; '.join(problems)}", EXIT_USAGE)
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class TermsContext:
    """What reading terms needs from outside the file."""

    #: The network's address prefix.
    prefix: str
    #: Now, in milliseconds since the epoch: durations count from it.
    now_ms: int
    #: An asset's ``asset_get`` answer (``decimals``, ``policy``, ``expiry_ms``), or None when
    #: the network has no such asset.
    find_asset: Callable[[str], Mapping[str, Any] | None]
    #: Where a relative key file path is read from: the terms file's folder.
    directory: Path


# --- reading the file --------------------------------------------------------------------------------


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (which TOML refuses too)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise ValueError(f"the key {twice!r} is given twice")
    return document


def load_terms_document(path: str) -> dict[str, Any]:
    """The table of terms in ``path``: TOML for ``.toml``, JSON for ``.json``."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".toml", ".json"):
        raise TermsError(path, ["a terms file is TOML or JSON: name it FILE.toml or FILE.json"])
    text = read_text_file(path, "terms file", MAX_TERMS_FILE_BYTES)
    kind = "TOML" if suffix == ".toml" else "JSON"
    try:
        document = tomllib.loads(text) if suffix == ".toml" else json.loads(text, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as error:
        # tomllib.TOMLDecodeError is a ValueError; a deep nesting or a huge integer is refused alike.
        raise TermsError(path, [f"not valid {kind}: {str(error)[:200]}"]) from None
    if not isinstance(document, dict):
        raise TermsError(path, [f"expected an object of terms, got {describe_value(document)}"])
    return document


def read_text_file(path: str, what: str, limit: int) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (a FIFO, a device or a huge
    file is refused rather than read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CommandError(f"{what} {path} does not exist", EXIT_USAGE) from None
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CommandError(f"cannot read {what} {quoted(path)}: {reason}", EXIT_USAGE) from None
    try:
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise CommandError(f"{what} {path} is not a regular file", EXIT_USAGE)
            data = file.read(limit + 1)
    except OSError as error:
        raise CommandError(f"cannot read {what} {path}: {error.strerror or error}", EXIT_USAGE) from None
    if len(data) > limit:
        raise CommandError(f"{what} {path} is larger than {limit} bytes", EXIT_USAGE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"{what} {path} is not UTF-8 text (byte {error.start})", EXIT_USAGE) from None


def key_file_public_key(path: str) -> bytes:
    """The public key of a key file, without asking for the passphrase of an encrypted one: it
    keeps its public key in clear (and signing with it checks the key against it)."""
    if not is_encrypted(path):
        try:
            return load_key(path).public_key
        except InvalidKeyFile as error:
            raise CommandError(error.message, EXIT_USAGE) from None
    try:
        document = json.loads(read_text_file(path, "key file", _MAX_KEY_FILE_BYTES))
    except ValueError:
        document = None
    public_key = document.get("public_key") if isinstance(document, dict) else None
    if not isinstance(public_key, str) or _PUBLIC_KEY.fullmatch(public_key) is None:
        raise CommandError(f"key file {path} has no public key in clear", EXIT_USAGE)
    return bytes.fromhex(public_key)


def paying_key_file(document: Mapping[str, Any], directory: Path) -> Path | None:
    """The key file the terms name as the paying account, or None when they name an address or nobody."""
    value = document.get("paying")
    if not isinstance(value, str) or not value or not _is_file(directory / value):
        return None
    return directory / value


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; False for a name too long or a directory not readable."""
    try:
        return path.is_file()
    except OSError:
        return False


def moving_times(document: Mapping[str, Any]) -> list[str]:
    """The fields whose time changes each time the file is read: durations from now, and the
    issue date when it is left to default to now."""
    moving = [] if "issue" in document else ["issue"]
    named = [("issue", document.get("issue")), ("maturity", document.get("maturity"))]
    coupons = document.get("coupons")
    if isinstance(coupons, list):
        named += [(f"coupons[{index}]", value) for index, value in enumerate(coupons)]
    return moving + [field for field, value in named if isinstance(value, str) and is_duration(value)]


def read_terms_file(path: str, context: TermsContext) -> IssueBond:
    """The ``IssueBond`` body the terms file ``path`` describes."""
    return read_terms(load_terms_document(path), context, source=path)


# --- reading the terms ---------------------------------------------------------------------------------


class _Problems:
    """Problems found so far, each with its field."""

    def __init__(self) -> None:
        self.noted: list[tuple[str, str]] = []

    def add(self, field: str, text: str) -> None:
        self.noted.append((field, text))

    @property
    def found(self) -> list[str]:
        """Each problem as ``field: what is wrong``, in the order of ``FIELDS`` (unknown fields last)."""

        def place(field: str) -> int:
            name = field.split("[", 1)[0]
            return FIELDS.index(name) if name in FIELDS else len(FIELDS)

        ordered = sorted(self.noted, key=lambda noted: place(noted[0]))
        return [f"{field}: {text}" for field, text in ordered]


def read_terms(document: Mapping[str, Any], context: TermsContext, *, source: str = "terms") -> IssueBond:
    """The ``IssueBond`` body of a table of terms; a ``TermsError`` listing every problem."""
    problems = _Problems()
    for field in document:
        if field not in FIELDS:
            problems.add(str(field), f"unknown field (the fields are: {', '.join(FIELDS)})")
    for field in REQUIRED:
        if field not in document:
            hint = " (write [] for a bond that pays no coupons)" if field == "coupons" else ""
            problems.add(field, f"missing{hint}")
    reader = _Reader(document, context, problems)
    body = reader.body()
    if problems.found or body is None:
        raise TermsError(source, problems.found)
    return body


class _Reader:
    """Reads each field once, noting its problems; ``body`` puts the fields together."""

    def __init__(self, document: Mapping[str, Any], context: TermsContext, problems: _Problems) -> None:
        self.document = document
        self.context = context
        self.problems = problems

    def body(self) -> IssueBond | None:
        bond = self.text("id", _asset_id_problem)
        name = self.text("name", asset_name_problem)
        units = self.count("units")
        settlement = self.settlement(bond)
        face = self.face(settlement)
        rate = self.rate()
        frequency = self.frequency()
        issue_ms = self.time("issue") if "issue" in self.document else self.context.now_ms
        coupons = self.coupons()
        maturity_ms = self.time("maturity")
        self.check_order(issue_ms, coupons, maturity_ms)
        self.check_amounts(units, face, rate, coupons)
        first_period = self.first_period(issue_ms, coupons, frequency)
        paying, proceeds, registrar = self.account("paying"), self.account("proceeds"), self.account("registrar")
        policy = self.choice("policy", ("restricted", "open"), "restricted")
        use = self.text("use_of_proceeds", _label_problem, default="")
        green = self.flag("green")
        consent = self.signature("paying_consent")
        values = (bond, name, units, registrar, policy, settlement, face, rate, frequency, first_period, coupons,
                  maturity_ms, issue_ms, paying, proceeds, use, green, consent)
        if self.problems.noted or settlement is None or any(value is None for value in values):
            return None
        return IssueBond(
            str(bond), str(name), int(units or 0), bytes(registrar or b""), str(policy), str(settlement["id"]),
            int(face or 0), int(rate or 0), int(frequency or 0), int(first_period or 0), tuple(coupons or ()),
            int(maturity_ms or 0), int(issue_ms or 0), bytes(paying or b""), bytes(proceeds or b""), str(use),
            bool(green), bytes(consent or b""),
        )

    # --- one field each ------------------------------------------------------------------------

    def value(self, field: str) -> Any:
        return self.document.get(field)

    def text(self, field: str, problem_of: Callable[[str], str | None], *, default: str | None = None) -> str | None:
        value = self.value(field)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problems.add(field, f"expected text, got {describe_value(value)}")
            return None
        problem = problem_of(value)
        if problem is not None:
            self.problems.add(field, problem)
            return None
        return value

    def count(self, field: str) -> int | None:
        value = self.value(field)
        if value is None:
            return None
        if not _is_integer(value):
            self.problems.add(field, f"expected a whole number, got {describe_value(value)}")
            return None
        if not 1 <= value <= MAX_INT:
            self.problems.add(field, f"{value} is out of range: from 1 to {MAX_INT}")
            return None
        return int(value)

    def settlement(self, bond: str | None) -> Mapping[str, Any] | None:
        """The settlement asset as the node describes it."""
        asset_id = self.text("settlement", _asset_id_problem)
        if asset_id is None:
            return None
        if asset_id == bond:
            self.problems.add("settlement", "a bond cannot be paid in itself")
            return None
        found = self.context.find_asset(asset_id)
        if found is None:
            self.problems.add("settlement", f"no asset {asset_id} on this network")
        elif found.get("policy") != "open":
            self.problems.add("settlement", f"{asset_id} is restricted; a bond is paid in an open asset")
        elif found.get("expiry_ms"):
            self.problems.add("settlement", f"{asset_id} expires; a bond is paid in an asset that never expires")
        else:
            return found
        return None

    def face(self, settlement: Mapping[str, Any] | None) -> int | None:
        """One unit's face value: whole units of the settlement asset, converted exactly."""
        value = self.value("face")
        if value is None:
            return None
        asset = str(settlement["id"]) if settlement is not None else "the settlement asset"
        if isinstance(value, float):
            self.problems.add("face", f"{value!r} is a floating-point number, which is inexact: write the amount as "
                              f'text, e.g. "{value:.2f}"')
            return None
        if _is_integer(value):
            whole, fraction = str(value), ""
        elif isinstance(value, str) and (match := _DISPLAY_AMOUNT.fullmatch(value.strip())) is not None:
            whole, fraction = match.group(1), match.group(2) or ""
        else:
            shown = quoted(value) if isinstance(value, str) else describe_value(value)
            self.problems.add("face", f'{shown} is not an amount in whole units of {asset}, like "10000" or "100.00"')
            return None
        if settlement is None:
            return 0  # its shape is right; its value needs the settlement asset's decimals
        decimals = int(settlement["decimals"])
        if len(fraction.rstrip("0")) > decimals:
            self.problems.add("face", f"{quoted(str(value))}: {asset} has {decimals} decimals")
            return None
        scale: int = 10**decimals
        units = int(whole) * scale + int(fraction[:decimals].ljust(decimals, "0") or "0")
        if not 1 <= units <= MAX_INT:
            self.problems.add("face", f"{quoted(str(value))} is out of range: from 1 smallest unit to {MAX_INT}")
            return None
        return units

    def rate(self) -> int | None:
        """The annual rate in millionths, from a percentage written exactly."""
        value = self.value("rate")
        if value is None:
            return None
        if not isinstance(value, str):
            self.problems.add("rate", f'expected a percentage in text, like "0.455%", got {describe_value(value)}')
            return None
        match = _PERCENT.fullmatch(value.strip())
        if match is None:
            self.problems.add("rate", f'{quoted(value)} is not a percentage like "0.455%"')
            return None
        whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
        if len(fraction) > _RATE_DECIMALS:
            self.problems.add("rate", f"{quoted(value)} is more precise than the chain counts: at most "
                              f"{_RATE_DECIMALS} decimals (0.0001 % is one millionth)")
            return None
        scale: int = 10**_RATE_DECIMALS
        millionths = int(whole) * scale + int(fraction.ljust(_RATE_DECIMALS, "0"))
        if millionths > RATE_SCALE:
            self.problems.add("rate", f"{quoted(value)} is over 100%")
            return None
        return millionths

    def frequency(self) -> int | None:
        value = self.value("frequency")
        if value is None:
            return None
        frequency = FREQUENCY_WORDS.get(value) if isinstance(value, str) else value if _is_integer(value) else None
        if frequency not in FREQUENCIES:
            shown = quoted(value) if isinstance(value, str) else str(value) if _is_integer(value) else (
                describe_value(value))
            self.problems.add("frequency", f"{shown} is not one of 1, 2, 4, 12, {', '.join(FREQUENCY_WORDS)}")
            return None
        return frequency

    def time(self, field: str) -> int | None:
        value = self.value(field)
        return None if value is None else self.moment(field, value)

    def moment(self, field: str, value: Any) -> int | None:
        timestamp_ms, problem = read_moment(value, self.context.now_ms)
        if problem is not None:
            self.problems.add(field, problem)
        return timestamp_ms

    def coupons(self) -> tuple[int, ...] | None:
        value = self.value("coupons")
        if value is None:
            return None
        if not isinstance(value, list):
            self.problems.add("coupons", f"expected a list of times, got {describe_value(value)}")
            return None
        if len(value) > MAX_COUPONS:
            self.problems.add("coupons", f"{len(value)} coupon times; a bond has at most {MAX_COUPONS}")
            return None
        times = [self.moment(f"coupons[{index}]", item) for index, item in enumerate(value)]
        if any(item is None for item in times):
            return None
        return tuple(int(item or 0) for item in times)

    def check_order(self, issue_ms: int | None, coupons: tuple[int, ...] | None, maturity_ms: int | None) -> None:
        """Payment times increase, after the issue date and after now; maturity comes last."""
        if issue_ms is None or coupons is None or maturity_ms is None:
            return
        named = [(f"coupons[{index}]", moment) for index, moment in enumerate(coupons)] + [("maturity", maturity_ms)]
        earlier_field, earlier = "issue", issue_ms
        for field, moment in named:
            # The last coupon may fall on the maturity date: both are paid, the coupon first.
            same_allowed = field == "maturity" and earlier_field != "issue"
            if moment < earlier or (moment == earlier and not same_allowed):
                self.problems.add(field, f"{format_moment(moment)} is not after {earlier_field} "
                                  f"({format_moment(earlier)})")
            elif moment <= self.context.now_ms:
                self.problems.add(field, f"{format_moment(moment)} has already passed")
            earlier_field, earlier = field, moment

    def check_amounts(self, units: int | None, face: int | None, rate: int | None,
                      coupons: tuple[int, ...] | None) -> None:
        """The redemption fits in an amount; a bond pays coupons exactly when its rate is above 0%."""
        if units is not None and face and face * units > MAX_INT:
            self.problems.add("face", f"face times units is over the largest amount, {MAX_INT} smallest units")
        if rate is not None and coupons is not None and bool(rate) != bool(coupons):
            if coupons:
                self.problems.add("rate", 'a bond with coupons pays a rate above "0%"')
            else:
                self.problems.add("coupons", "a bond with a rate above 0% lists its coupon times")

    def first_period(self, issue_ms: int | None, coupons: tuple[int, ...] | None, frequency: int | None) -> int | None:
        """0 for a regular first period, else its days: as given, or computed."""
        value = self.value("first_period")
        if value == "regular":
            return 0
        if value is not None:
            if not _is_integer(value) or not 1 <= value <= MAX_FIRST_PERIOD_DAYS:
                shown = repr(value) if _is_integer(value) or isinstance(value, str) else describe_value(value)
                self.problems.add("first_period", f'{shown} is neither "regular" nor a number of days from 1 to '
                                  f"{MAX_FIRST_PERIOD_DAYS}")
                return None
            if coupons == ():
                self.problems.add("first_period", "only a bond with coupons has a first period")
                return None
            return int(value)
        if issue_ms is None or coupons is None or frequency is None:
            return None
        if not coupons:
            return 0
        if coupons[0] <= issue_ms:
            return None  # the order's problem, told once
        if is_regular_first_period(issue_ms, coupons[0], frequency):
            return 0
        days = actual_days(issue_ms, coupons[0])
        if days <= 0:
            self.problems.add("first_period", "the first coupon falls on the issue date in Japan time: give "
                              'first_period = "regular" or a number of days')
            return None
        if days > MAX_FIRST_PERIOD_DAYS:
            self.problems.add("first_period", f"the first coupon is {days} days after the issue date; an odd first "
                              f"period is at most {MAX_FIRST_PERIOD_DAYS} days")
            return None
        return days

    def account(self, field: str) -> bytes | None:
        """An address, or the public key of a key file; empty bytes (the issuer) when not given."""
        value = self.value(field)
        if value is None:
            return b""
        if not isinstance(value, str) or not value:
            self.problems.add(field, f"expected an address or a key file, got {describe_value(value)}")
            return None
        try:
            return decode_address(value, self.context.prefix)
        except InvalidAddress as error:
            address_problem = error.message
        path = self.context.directory / value
        if not _is_file(path):
            self.problems.add(field, f"{quoted(value)} is neither an address on this network ({address_problem}) "
                              "nor a key file")
            return None
        try:
            return key_file_public_key(str(path))
        except CommandError as error:
            self.problems.add(field, error.message)
            return None

    def signature(self, field: str) -> bytes | None:
        """A signature written as 0x and hex; empty bytes when not given."""
        value = self.value(field)
        if value is None:
            return b""
        match = _SIGNATURE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self.problems.add(field, f"expected 0x and {2 * SIGNATURE_SIZE} hex digits (the paying account's "
                              "signature, from mura bond consent)")
            return None
        return bytes.fromhex(match.group(1))

    def choice(self, field: str, choices: Sequence[str], default: str) -> str | None:
        value = self.value(field)
        if value is None:
            return default
        if value not in choices:
            shown = quoted(value) if isinstance(value, str) else describe_value(value)
            self.problems.add(field, f"{shown} is not one of {', '.join(choices)}")
            return None
        return str(value)

    def flag(self, field: str) -> bool | None:
        value = self.value(field)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problems.add(field, f"expected true or false, got {describe_value(value)}")
            return None
        return value


def _asset_id_problem(text: str) -> str | None:
    return asset_id_problem(text)


def _label_problem(text: str) -> str | None:
    return label_problem(text, "a use of proceeds", MAX_LABEL_LENGTH, required=False)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
