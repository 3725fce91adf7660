"""Exchange adapters implementing core.ports.ExchangePort."""
