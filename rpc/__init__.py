"""The node's JSON-RPC 2.0 API over aiohttp, its health, readiness and metrics, and a client.

``jsonrpc`` is the transport-free engine, ``server`` carries it over HTTP
with ``/health``, ``/ready`` and ``/metrics`` within the ``limits``, and
``websocket`` over websockets at ``/ws``, where ``subscriptions`` sends each
final block the node tells its feed of; ``methods``, ``chain_methods``,
``account_methods`` and ``asset_methods`` are what the node serves (their
params in ``params``, their answers in ``render``), reading it through the
``NodeView`` interface of ``node_view``; ``client`` and ``wallet`` are the
calling side, used by the ``mura`` command.

May import ``mura.chain``. Never reaches into consensus internals: it reads
the node through that small view interface.
"""
