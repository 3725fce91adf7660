"""Pure domain: no I/O, no frameworks. Adapters implement the ports in :mod:`tradefleet.core.ports`."""
