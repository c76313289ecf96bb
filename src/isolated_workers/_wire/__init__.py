"""What crosses the process boundary: frames, bodies, codecs, the handshake.

Shared by both sides; imports nothing from `_host` or `_worker`.
"""
