"""Widgets of the eos-tui app."""
