"""JSON-RPC 2.0 exactly: envelopes, batches, notifications and the standard errors,
over a real server, with small test methods declared like the node's."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from mura.rpc.declarations import STRING, Method, Param, Result, integer
from mura.rpc.errors import TRANSACTION_REFUSED
from mura.rpc.jsonrpc import JsonRpcEngine

from .support import Endpoint, Serve


@dataclass
class Calls:
    """Test methods and what they observed."""

    notified: list[Any] = field(default_factory=list)

    async def add(self, a: int, b: int, c: int) -> int:
        return a + b + c

    async def notify(self, value: str) -> None:
        self.notified.append(value)

    async def fail(self) -> None:
        raise RuntimeError("secret internal detail")

    async def unserializable(self) -> object:
        return object()

    async def refuse(self) -> None:
        raise TRANSACTION_REFUSED.error({"rule": "nonce_too_low", "expected": 7, "raw": b"\x01\x02"})

    def methods(self) -> list[Method]:
        number = Result("number", {"type": "integer"}, "A number.")
        nothing = Result("nothing", {"type": "null"}, "Nothing.")
        return [
            Method(
                name="math_add",
                handler=self.add,
                summary="a + b + c",
                params=(
                    Param("a", integer(), "First."),
                    Param("b", integer(minimum=0), "Second, not negative."),
                    Param("c", integer(), "Third.", required=False, default=0),
                ),
                result=number,
            ),
            Method(
                name="test_notify",
                handler=self.notify,
                summary="Record the value.",
                params=(Param("value", STRING, "What to record."),),
                result=nothing,
            ),
            Method(name="test_fail", handler=self.fail, summary="A handler with a bug.", result=nothing),
            Method(name="test_unserializable", handler=self.unserializable, summary="Not JSON.", result=nothing),
            Method(
                name="test_refuse",
                handler=self.refuse,
                summary="An application error.",
                result=nothing,
                errors=(TRANSACTION_REFUSED,),
            ),
        ]


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def rpc(serve: Serve, calls: Calls) -> Endpoint:
    return await serve(calls.methods())


def request(method: str, params: Any = None, request_id: Any = None, *, notification: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if not notification:
        message["id"] = request_id
    return message


# --- parse errors and invalid requests ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"jsonrpc": "2.0", "method": "foobar", "params": "bar", "baz]', b"", b"\xff\xfe\x00garbage", b"[NaN]",
     b"[" * 100_000, b'{"id": 1, "jsonrpc": "2.0", "method": "math_add", "params": [1e999, 2]'],
    ids=["truncated", "empty", "not-utf8", "nan", "nested-too-deep", "unterminated"],
)
async def test_invalid_json_is_a_parse_error_with_null_id(rpc: Endpoint, raw: bytes) -> None:
    status, response = await rpc.post(raw=raw)
    assert status == 200
    assert response["id"] is None
    assert response["error"]["code"] == -32700 and response["error"]["message"] == "Parse error"
    assert response["error"]["data"]["reason"]
    assert await rpc.result("math_add", [1, 2]) == 3


@pytest.mark.parametrize(
    ("message", "echoed_id", "reason"),
    [
        ({"jsonrpc": "1.0", "method": "math_add", "params": [1, 2], "id": 4}, 4, 'jsonrpc must be exactly "2.0"'),
        ({"method": "math_add", "params": [1, 2], "id": "x"}, "x", 'jsonrpc must be exactly "2.0"'),
        ({"jsonrpc": 2.0, "method": "math_add", "params": [1, 2], "id": 4}, 4, 'jsonrpc must be exactly "2.0"'),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None, "method must be a string, got integer"),
        ({"jsonrpc": "2.0", "params": [], "id": 2}, 2, "method must be a string, got null"),
        ({"jsonrpc": "2.0", "method": "math_add", "params": "bar", "id": 5}, 5,
         "params must be an array or an object, got string"),
        ({"jsonrpc": "2.0", "method": "math_add", "params": 3, "id": 5}, 5,
         "params must be an array or an object, got integer"),
        ({"jsonrpc": "2.0", "method": "math_add", "id": {"a": 1}}, None,
         "id must be a string, an integer or null, got object"),
        ({"jsonrpc": "2.0", "method": "math_add", "id": [1]}, None,
         "id must be a string, an integer or null, got array"),
        ({"jsonrpc": "2.0", "method": "math_add", "id": 1.5}, None,
         "id must be a string, an integer or null, got number"),
        ({"jsonrpc": "2.0", "method": "math_add", "id": True}, None,
         "id must be a string, an integer or null, got boolean"),
        (1, None, "a request is a JSON object, got integer"),
        ("a request", None, "a request is a JSON object, got string"),
        (None, None, "a request is a JSON object, got null"),
    ],
    ids=["version-1.0", "no-version", "numeric-version", "method-not-string", "no-method", "params-string",
         "params-number", "id-object", "id-array", "id-fractional", "id-boolean", "number", "string", "null"],
)
async def test_invalid_request(rpc: Endpoint, message: Any, echoed_id: Any, reason: str) -> None:
    status, response = await rpc.post(message)
    assert status == 200
    assert response == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": reason}},
        "id": echoed_id,
    }


async def test_unknown_method_is_method_not_found(rpc: Endpoint) -> None:
    error = await rpc.error("math_subtract", [1, 2])
    assert error == {"code": -32601, "message": "Method not found", "data": {"method": "math_subtract"}}


# --- params -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [([1, 2], 3), ([1, 2, 3], 6), ({"a": 1, "b": 2}, 3), ({"b": 2, "c": 3, "a": 1}, 6), ([1, 2, None], 3),
     ({"a": 1, "b": 2, "c": None}, 3)],
    ids=["by-position", "by-position-optional", "by-name", "by-name-any-order", "null-optional", "null-optional-named"],
)
async def test_params_by_position_and_by_name(rpc: Endpoint, params: Any, expected: int) -> None:
    assert await rpc.result("math_add", params) == expected


async def test_absent_params_member_means_no_params(rpc: Endpoint) -> None:
    error = await rpc.error("test_fail")
    assert error == {"code": -32603, "message": "Internal error", "data": {"method": "test_fail"}}
    assert (await rpc.error("math_add"))["data"] == {"param": "a", "reason": "missing required param"}


@pytest.mark.parametrize(
    ("params", "data"),
    [
        ([1], {"param": "b", "reason": "missing required param"}),
        ({"a": 1}, {"param": "b", "reason": "missing required param"}),
        ([1, 2, 3, 4], {"position": 3, "reason": "math_add takes at most 3 params, got 4"}),
        ({"a": 1, "b": 2, "d": 4}, {"param": "d", "reason": "unexpected param 'd'; math_add takes: a, b, c"}),
        (["1", 2], {"param": "a", "reason": "expected an integer, got string"}),
        ([True, 2], {"param": "a", "reason": "expected an integer, got boolean"}),
        ([1.0, 2], {"param": "a", "reason": "expected an integer, got number"}),
        ([None, 2], {"param": "a", "reason": "expected an integer, got null"}),
        ({"a": 1, "b": -1}, {"param": "b", "reason": "must be at least 0, got -1"}),
        ({"a": 1, "b": -(10**400)},
         {"param": "b", "reason": "must be at least 0, got a negative integer of 401 digits"}),
        ([1, 2, [3]], {"param": "c", "reason": "expected an integer, got array"}),
    ],
    ids=[
        "missing", "missing-named", "extra", "extra-named", "string", "boolean", "float", "null", "bound",
        "far-out-of-bounds", "array",
    ],
)
async def test_invalid_params_name_the_param(rpc: Endpoint, params: Any, data: dict[str, Any]) -> None:
    assert await rpc.error("math_add", params) == {"code": -32602, "message": "Invalid params", "data": data}


async def test_method_without_params_refuses_any(rpc: Endpoint) -> None:
    error = await rpc.error("test_fail", [1])
    assert error["code"] == -32602 and error["data"]["position"] == 0


# --- internal and application errors -------------------------------------------------------


async def test_handler_bug_is_internal_error_and_server_keeps_serving(
    rpc: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mura.rpc")
    status, response = await rpc.post(request("test_fail", request_id=3))
    assert status == 200
    assert response == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error",
                                                    "data": {"method": "test_fail"}}, "id": 3}
    assert "secret" not in str(response) and "Traceback" not in str(response)
    assert "secret internal detail" in caplog.text, "the traceback is logged server side"
    assert await rpc.result("math_add", [2, 2]) == 4


async def test_unserializable_result_is_internal_error(rpc: Endpoint) -> None:
    error = await rpc.error("test_unserializable")
    assert error["code"] == -32603
    assert await rpc.result("math_add", [2, 3]) == 5


async def test_application_error_carries_json_safe_data(rpc: Endpoint) -> None:
    error = await rpc.error("test_refuse")
    assert error == {"code": -32010, "message": "Transaction refused",
                     "data": {"rule": "nonce_too_low", "expected": 7, "raw": "0x0102"}}


# --- notifications and batches --------------------------------------------------------------


async def test_notification_gets_no_response_but_runs(rpc: Endpoint, calls: Calls) -> None:
    status, body = await rpc.post(request("test_notify", ["hello"], notification=True))
    assert (status, body) == (204, None)
    assert calls.notified == ["hello"]


@pytest.mark.parametrize(
    "message",
    [request("no_such", notification=True), request("math_add", ["x"], notification=True),
     request("test_fail", notification=True)],
    ids=["unknown-method", "invalid-params", "internal-error"],
)
async def test_notification_errors_are_not_reported(rpc: Endpoint, message: dict[str, Any]) -> None:
    assert await rpc.post(message) == (204, None)


async def test_null_id_is_a_request_not_a_notification(rpc: Endpoint) -> None:
    status, response = await rpc.post(request("math_add", [1, 1], request_id=None))
    assert (status, response) == (200, {"jsonrpc": "2.0", "result": 2, "id": None})


async def test_batch_mixing_good_bad_and_notification_requests(rpc: Endpoint, calls: Calls) -> None:
    batch = [
        request("math_add", [1, 2], "sum"),
        request("test_notify", ["batched"], notification=True),
        request("math_add", {"a": 1}, "missing"),
        {"foo": "boo"},
        request("math_subtract", [1], 5),
        request("test_fail", request_id=9),
        request("test_refuse", request_id=10),
        request("no_such", notification=True),
        1,
    ]
    status, responses = await rpc.post(batch)
    assert status == 200 and isinstance(responses, list)
    by_id = {response["id"]: response for response in responses if response["id"] is not None}
    assert by_id.keys() == {"sum", "missing", 5, 9, 10}
    assert by_id["sum"]["result"] == 3
    assert by_id["missing"]["error"]["code"] == -32602 and by_id["missing"]["error"]["data"]["param"] == "b"
    assert by_id[5]["error"]["code"] == -32601
    assert by_id[9]["error"]["code"] == -32603
    assert by_id[10]["error"]["code"] == -32010
    anonymous = [response["error"]["code"] for response in responses if response["id"] is None]
    assert anonymous == [-32600, -32600]
    assert calls.notified == ["batched"]


async def test_batch_of_invalid_entries_gives_one_error_each(rpc: Endpoint) -> None:
    status, responses = await rpc.post([1, 2, 3])
    assert status == 200
    assert [(r["id"], r["error"]["code"]) for r in responses] == [(None, -32600)] * 3


async def test_empty_batch_is_one_invalid_request(rpc: Endpoint) -> None:
    status, response = await rpc.post([])
    assert status == 200
    assert response["id"] is None and response["error"]["code"] == -32600


async def test_batch_of_only_notifications_has_no_body(rpc: Endpoint, calls: Calls) -> None:
    batch = [request("test_notify", [str(n)], notification=True) for n in range(3)]
    assert await rpc.post(batch) == (204, None)
    assert sorted(calls.notified) == ["0", "1", "2"]


async def test_nested_batch_entry_is_invalid(rpc: Endpoint) -> None:
    _status, responses = await rpc.post([[request("math_add", [1, 2], 1)]])
    assert [r["error"]["code"] for r in responses] == [-32600]


# --- declarations -----------------------------------------------------------------------


def test_engine_refuses_reserved_and_duplicate_names(calls: Calls) -> None:
    methods = calls.methods()
    with pytest.raises(ValueError, match="share a name"):
        JsonRpcEngine([*methods, methods[0]])
    result = Result("x", {}, "x")
    with pytest.raises(ValueError, match="reserved"):
        JsonRpcEngine([Method(name="rpc.mine", handler=calls.fail, summary="", result=result)])
    with pytest.raises(ValueError, match="namespace_method"):
        Method(name="has space", handler=calls.fail, summary="", result=result)
    with pytest.raises(ValueError, match="before optional"):
        Method(name="a_b", handler=calls.fail, summary="", result=result,
               params=(Param("x", STRING, "", required=False), Param("y", STRING, "")))


async def test_discover_lists_exactly_the_registered_methods(rpc: Endpoint, calls: Calls) -> None:
    document = await rpc.result("rpc.discover")
    assert [method["name"] for method in document["methods"]] == [m.name for m in calls.methods()] + ["rpc.discover"]
    add = document["methods"][0]
    assert [(p["name"], p["required"], p["schema"]) for p in add["params"]] == [
        ("a", True, {"type": "integer"}),
        ("b", True, {"type": "integer", "minimum": 0}),
        ("c", False, {"type": "integer", "default": 0}),
    ]
    assert document["methods"][4]["errors"] == [
        {"code": -32010, "message": "Transaction refused", "data": TRANSACTION_REFUSED.description}
    ]


async def test_engine_is_transport_independent(calls: Calls) -> None:
    engine = JsonRpcEngine(calls.methods())
    assert await engine.handle('{"jsonrpc": "2.0", "method": "math_add", "params": [2, 3], "id": 1}') == (
        '{"jsonrpc":"2.0","result":5,"id":1}'
    )
    assert await engine.handle(b'{"jsonrpc": "2.0", "method": "test_notify", "params": ["x"]}') is None
    assert calls.notified == ["x"]


async def test_a_batch_shares_a_budget_of_handler_time_and_the_rest_is_answered_busy() -> None:
    """A batch of heavy reads must not hold the event loop (which consensus shares): once the
    batch has used its budget, each call still to run is answered -32000 (send it again)."""

    async def heavy(value: int) -> int:
        # Twenty milliseconds of work on the event loop, as a large read is.
        until = time.perf_counter() + 0.02
        while time.perf_counter() < until:
            pass
        return value

    method = Method(
        name="test_heavy",
        handler=heavy,
        summary="Twenty milliseconds of work.",
        params=(Param("value", integer(), "Echoed."),),
        result=Result("number", {"type": "integer"}, "The value."),
    )
    engine = JsonRpcEngine([method], batch_work_seconds=0.05)
    batch = [{"jsonrpc": "2.0", "method": "test_heavy", "params": [index], "id": index} for index in range(10)]
    answer = await engine.handle(json.dumps(batch))
    assert answer is not None
    responses = sorted(json.loads(answer), key=lambda response: response["id"])
    served = [response["id"] for response in responses if "result" in response]
    busy = [response for response in responses if "error" in response]
    assert served and served == list(range(len(served))) and busy, responses
    assert all(
        response["error"] == {
            "code": -32000,
            "message": "Server busy",
            "data": {"limit": "batch_work_seconds", "batch_work_seconds": 0.05},
        }
        for response in busy
    )
    # A single request has no batch budget.
    single = await engine.handle(json.dumps(batch[0]))
    assert single is not None and json.loads(single)["result"] == 0


def test_the_batch_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_work_seconds must be positive"):
        JsonRpcEngine([], batch_work_seconds=0)


async def test_a_batch_is_given_answers_up_to_its_answer_bytes_and_the_rest_is_answered_busy() -> None:
    """An answer waits in memory until its client takes it: a batch of a hundred large reads from
    a client that never reads once pinned a hundred large answers, for each of its requests."""

    async def large(size: int) -> str:
        return "x" * size

    method = Method(
        name="test_large",
        handler=large,
        summary="A long string.",
        params=(Param("size", integer(minimum=0), "Its length."),),
        result=Result("text", {"type": "string"}, "The string."),
    )
    engine = JsonRpcEngine([method], batch_answer_bytes=10_000)
    batch = [{"jsonrpc": "2.0", "method": "test_large", "params": [4_000], "id": index} for index in range(10)]
    answer = await engine.handle(json.dumps(batch))
    assert answer is not None and len(answer) < 10_000 + 4_100 + 10 * 200
    responses = json.loads(answer)
    given = [response for response in responses if "result" in response]
    busy = [response for response in responses if "error" in response]
    assert len(given) == 3 and all(response["result"] == "x" * 4_000 for response in given)
    assert len(busy) == 7 and all(
        response["error"]["data"] == {"limit": "batch_answer_bytes", "batch_answer_bytes": 10_000} for response in busy
    )
    # The first answer is always given, however large; a single request has no batch budget.
    alone = await engine.handle(json.dumps([{"jsonrpc": "2.0", "method": "test_large", "params": [50_000], "id": 1}]))
    assert alone is not None and json.loads(alone)[0]["result"] == "x" * 50_000
    with pytest.raises(ValueError, match="batch_answer_bytes must be at least 1"):
        JsonRpcEngine([], batch_answer_bytes=0)
