"""Helpers shared by the command-line programs."""
