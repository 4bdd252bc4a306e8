"""Widgets of the wizard: the step list, the generated answers form, the run view, the doctor table."""
