"""The interactive wizard: a Textual view over the engine.

Only this package imports Textual (tests/unit/test_import_rules.py guards the rest). Screens hold no
step logic: they show detection facts, build each step's form from its pydantic ``Answers`` model,
preview ``Engine.plan`` and run one step at a time through ``Engine.run([step], answers)`` in a
thread worker, showing the engine's events as they come. Entry point: :func:`gpuwizard.tui.app.run_tui`.
"""
