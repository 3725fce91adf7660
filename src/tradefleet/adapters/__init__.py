"""Adapters: implementations of the core ports (exchanges, data, storage)."""
