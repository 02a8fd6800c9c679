"""The PySide6 desktop app: composition root, view-models and widgets. The only package with Qt."""
