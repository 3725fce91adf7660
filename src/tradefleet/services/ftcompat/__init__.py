"""Freqtrade's REST API for every TradeFleet bot, so Freqtrade's clients and FreqUI can drive it.

Routes are under ``/ft/{bot_id}/api/v1`` (``router``); :class:`FtCompatService` maps the bots service's
answers onto Freqtrade's shapes and :class:`FtAuth` accepts Freqtrade's ways of logging in.
"""

from tradefleet.services.ftcompat.auth import FtAuth
from tradefleet.services.ftcompat.service import FtCompatService

__all__ = ["FtAuth", "FtCompatService"]
