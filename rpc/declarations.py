"""Method declarations: a method's params, result and errors, stated once.

The engine validates every call against these declarations before the
handler runs, by position or by name, and ``openrpc`` turns the same
declarations into the document ``rpc.discover`` returns. A param's
``ParamType`` both checks a JSON value and converts it into what the handler
wants (an address string becomes public-key bytes), so a handler only ever
sees values that passed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mura.rpc.errors import ApplicationError, InvalidParams

#: A method's implementation: called with the converted params in declared order.
Handler = Callable[..., Awaitable[Any]]

_METHOD_NAME = re.compile(r"^(rpc\.)?[A-Za-z][A-Za-z0-9]*(_[A-Za-z][A-Za-z0-9]*)*$")
#: Longer integers are named by their length in error messages, which stay short.
_MAX_SHOWN_DIGITS = 24


class ParamInvalid(Exception):
    """Raised by a ``ParamType`` check: the value is refused, and ``reason`` says why."""

    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.extra = extra


def json_type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass(frozen=True, slots=True)
class ParamType:
    """How one kind of param is checked, converted and described."""

    #: The JSON Schema of the accepted JSON values (for OpenRPC).
    schema: Mapping[str, Any]
    #: Returns the converted value or raises ``ParamInvalid``.
    check: Callable[[Any], Any]


def _check_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ParamInvalid(f"expected a string, got {json_type_name(value)}")
    return value


def _check_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamInvalid(f"expected a boolean, got {json_type_name(value)}")
    return value


STRING = ParamType({"type": "string"}, _check_string)
BOOLEAN = ParamType({"type": "boolean"}, _check_boolean)


def format_number(value: int | float) -> str:
    """A JSON number as an error message shows it: a fraction by ``%g``, an integer in full
    unless it has more than ``_MAX_SHOWN_DIGITS`` digits, then by its length.

    Unlike ``%g``, which overflows on an integer past the float range, it takes any integer
    JSON can carry.
    """
    if isinstance(value, float):
        return f"{value:g}"
    digits = str(abs(value))
    if len(digits) <= _MAX_SHOWN_DIGITS:
        return str(value)
    return f"{'a negative' if value < 0 else 'an'} integer of {len(digits)} digits"


def integer(*, minimum: int | None = None, maximum: int | None = None) -> ParamType:
    """Whole numbers (never booleans or 1.0) within the optional bounds."""

    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParamInvalid(f"expected an integer, got {json_type_name(value)}")
        if minimum is not None and value < minimum:
            raise ParamInvalid(f"must be at least {minimum}, got {format_number(value)}")
        if maximum is not None and value > maximum:
            raise ParamInvalid(f"must be at most {maximum}, got {format_number(value)}")
        return value

    schema: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return ParamType(schema, check)


def number(*, above: float, maximum: float) -> ParamType:
    """A JSON number (integer or fraction, never a boolean) greater than ``above`` and at most ``maximum``."""

    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ParamInvalid(f"expected a number, got {json_type_name(value)}")
        # An int of any size compares exactly with a float; only float() of one past the float
        # range overflows, and the bounds have refused those before the conversion.
        if not value > above:
            raise ParamInvalid(f"must be greater than {above:g}, got {format_number(value)}")
        if value > maximum:
            raise ParamInvalid(f"must be at most {maximum:g}, got {format_number(value)}", maximum=maximum)
        return float(value)

    return ParamType({"type": "number", "exclusiveMinimum": above, "maximum": maximum}, check)


@dataclass(frozen=True, slots=True)
class Param:
    """One declared param of a method."""

    #: The name a by-name call uses, and OpenRPC shows.
    name: str
    #: How the value is checked and converted.
    type: ParamType
    #: What the param means, for OpenRPC.
    description: str
    #: Whether a call must give it; a missing (or null) optional param gets ``default``.
    required: bool = True
    #: The handler's value when an optional param is absent.
    default: Any = None


@dataclass(frozen=True, slots=True)
class Result:
    """The declared result of a method."""

    #: A short name for the result, for OpenRPC.
    name: str
    #: The JSON Schema of the result.
    schema: Mapping[str, Any]
    #: What the result means.
    description: str


@dataclass(frozen=True, slots=True)
class Method:
    """A JSON-RPC method: its name, declarations and async handler."""

    #: ``namespace_method``, e.g. ``account_getBalance`` (``rpc.`` is for the engine).
    name: str
    #: Called with the converted params, positionally, in declared order.
    handler: Handler
    #: One line on what the method does.
    summary: str
    #: What the method returns.
    result: Result
    #: The params in positional order; required ones before optional ones.
    params: tuple[Param, ...] = ()
    #: The application errors it may return.
    errors: tuple[ApplicationError, ...] = ()
    #: A longer explanation, for OpenRPC.
    description: str = ""
    #: True when a call may wait long for the chain (``tx_wait``): the engine runs it
    #: in the transport's wait slot, bounded apart from the quick calls (see ``jsonrpc.WaitSlot``).
    waits: bool = False
    #: True when a call's time is its own work on the event loop, charged to its batch's
    #: budget (``jsonrpc.DEFAULT_BATCH_WORK_SECONDS``); False for one that awaits other work
    #: (signature checks off the loop), whose time says nothing of what it cost the loop.
    charged: bool = True
    _by_name: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _METHOD_NAME.match(self.name):
            raise ValueError(f"method name {self.name!r} is not namespace_method")
        names = [param.name for param in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"method {self.name} declares a param twice")
        required = [param.required for param in self.params]
        if required != sorted(required, reverse=True):
            raise ValueError(f"method {self.name}: required params must come before optional ones")
        object.__setattr__(self, "_by_name", {name: index for index, name in enumerate(names)})

    def bind(self, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        """The handler's arguments for ``params`` given by position or by name.

        Raises ``InvalidParams`` naming the first param that is missing,
        unexpected or refused by its type.
        """
        if isinstance(params, Mapping):
            unexpected = [name for name in params if name not in self._by_name]
            if unexpected:
                raise InvalidParams(self._unexpected_reason(unexpected[0]), param=unexpected[0])
            values = [params.get(param.name) for param in self.params]
            present = [param.name in params for param in self.params]
        else:
            if len(params) > len(self.params):
                raise InvalidParams(
                    f"{self.name} takes at most {len(self.params)} params, got {len(params)}",
                    position=len(self.params),
                )
            values = [*params, *[None] * (len(self.params) - len(params))]
            present = [index < len(params) for index in range(len(self.params))]
        arguments = zip(self.params, values, present, strict=True)
        return [self._convert(param, value, given) for param, value, given in arguments]

    def _unexpected_reason(self, name: str) -> str:
        expected = ", ".join(param.name for param in self.params) or "none"
        return f"unexpected param {name!r}; {self.name} takes: {expected}"

    @staticmethod
    def _convert(param: Param, value: Any, given: bool) -> Any:
        if not given or (value is None and not param.required):
            if param.required:
                raise InvalidParams("missing required param", param=param.name)
            return param.default
        try:
            return param.type.check(value)
        except ParamInvalid as error:
            raise InvalidParams(error.reason, param=param.name, **error.extra) from None
