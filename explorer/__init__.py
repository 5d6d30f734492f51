"""The block explorer: a page every node serves at ``/explorer/`` on its JSON-RPC port.

Data only: ``index.html``, ``explorer.js``, ``explorer.css`` and ``icon.svg``,
served by ``mura.rpc.explorer``. The page reads the node's own JSON-RPC and
its ``/ws`` websocket from the browser; nothing is built or fetched from
elsewhere.
"""
