"""View-models: QObjects with signals and slots over a :class:`ui.session.Session`.

Widgets talk only to view-models; view-models talk to the session (the workspace and the sync
engine) and re-read what they show when its signals say something changed.
"""
