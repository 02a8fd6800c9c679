"""Widgets: what the user sees. Each takes its view-model and nothing else from the layers below."""
