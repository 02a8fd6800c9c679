"""Benchmarks for FocusMate (not shipped; CI runs only a smoke test of the harness).

Each ``bench/<name>.py`` measures us side by side with anchors in one run and writes a
``bench.common.Result``; ``bench/run_all.py`` (``make bench``) runs them all, bounded, and
``bench/report.py`` writes ``docs/benchmarks.md``. See ``bench/README.md``.
"""
