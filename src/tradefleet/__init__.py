"""TradeFleet: a self-hosted platform that runs a fleet of crypto trading bots.

The public surface is small on purpose: the strategy API for strategy authors and the exception tree.
"""

from tradefleet.core.errors import TradeFleetError
from tradefleet.core.strategy import (
    BooleanParameter,
    CategoricalParameter,
    DecimalParameter,
    IntParameter,
    IStrategy,
)

__all__ = [
    "BooleanParameter",
    "CategoricalParameter",
    "DecimalParameter",
    "IStrategy",
    "IntParameter",
    "TradeFleetError",
]
__version__ = "0.1.0"
