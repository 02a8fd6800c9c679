"""Interoperability tests against Yjs tooling we did not write (Node's yjs and y-websocket)."""
