"""Helpers shared by integration and end-to-end tests (not fixtures: plain importable code)."""
