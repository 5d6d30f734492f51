"""The OpenRPC 1.2.6 document of a set of methods, and the ``rpc.discover`` method.

The document is built from the same declarations the engine validates calls
with, so it cannot drift from what the server actually accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mura.rpc.declarations import Method, Param, Result

OPENRPC_VERSION = "1.2.6"
DISCOVER = "rpc.discover"
_META_SCHEMA = "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json"


def build_document(methods: Sequence[Method], *, title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenRPC document listing exactly ``methods``, in the order given."""
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": [describe_method(method) for method in methods],
    }


def describe_method(method: Method) -> dict[str, Any]:
    """One OpenRPC Method Object."""
    described: dict[str, Any] = {
        "name": method.name,
        "summary": method.summary,
        "paramStructure": "either",
        "params": [_describe_param(param) for param in method.params],
        "result": _describe_result(method.result),
    }
    if method.description:
        described["description"] = method.description
    if method.errors:
        described["errors"] = [
            {"code": error.code, "message": error.message, "data": error.description} for error in method.errors
        ]
    return described


def _describe_param(param: Param) -> dict[str, Any]:
    schema = dict(param.type.schema)
    if not param.required and param.default is not None:
        schema["default"] = param.default
    return {"name": param.name, "description": param.description, "required": param.required, "schema": schema}


def _describe_result(result: Result) -> dict[str, Any]:
    return {"name": result.name, "description": result.description, "schema": dict(result.schema)}


def discover_method(document: Callable[[], dict[str, Any]]) -> Method:
    """``rpc.discover``: returns ``document()``, which should list this method too.

    The document is passed as a callable because it is built from a method
    list that includes this very method.
    """

    async def discover() -> dict[str, Any]:
        return document()

    return Method(
        name=DISCOVER,
        handler=discover,
        summary="The OpenRPC document of every method this server serves.",
        result=Result("OpenRPC Schema", {"$ref": _META_SCHEMA}, "An OpenRPC 1.2.6 document."),
    )
