"""The transparent and explicit proxy: mitmproxy embedded with kalkan's addons.

A flow's path is one list, :func:`gateway.proxy.master.build_addons`: SNI gate → the gateway's
own pages → HTTP policy → safe search → downloads → event tap, one module per addon.
``kalkan proxy`` runs :func:`~gateway.proxy.master.serve_proxy`.
"""
