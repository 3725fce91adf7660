"""Gateways: processes that host bots, hold them by lease, obey commands from the bus and report events."""

from tradefleet.services.gateway.commands import BusCommands, CommandReplies
from tradefleet.services.gateway.service import Gateway, GatewayConfig, Hosted, MarketFeed, RuntimeFactory

__all__ = ["BusCommands", "CommandReplies", "Gateway", "GatewayConfig", "Hosted", "MarketFeed", "RuntimeFactory"]
