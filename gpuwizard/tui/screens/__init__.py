"""Screens and panes of the wizard; thin views over the engine (no step logic here)."""
