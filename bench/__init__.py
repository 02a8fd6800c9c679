"""Benchmarks for FocusMate (not shipped, not run by the test suite).

* ``bench/relay_fanout.py``: the relay's document fan-out measured side by side against two
  anchor y-websocket servers (y-websocket's Node server and pycrdt-websocket); see
  ``bench/README.md``.
"""
