"""Replication: the sans-I/O wire protocol, relay and LAN links, and the sync engine.

Depends on ``focusmate`` only; never on Qt.
"""
