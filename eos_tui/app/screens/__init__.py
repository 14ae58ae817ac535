"""Screens of the eos-tui app."""
