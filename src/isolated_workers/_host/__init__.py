"""The host side: starting, supervising and talking to a worker.

Loaded on first use of a host name (see the package's `__getattr__`), so a
worker never imports it.
"""
