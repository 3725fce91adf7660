"""Alembic migration environment of the trading database (run through ``tradefleet db upgrade``)."""
