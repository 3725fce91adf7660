"""/health's exchanges component: the venues of running live bots, judged by how fresh their candles are."""

from __future__ import annotations

from tradefleet.adapters.storage import SqlTradingStore
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.services.gateway.metrics import live_exchange_health

NOW = 1_800_000_000_000
MINUTE = 60_000


def bot(bot_id: str, mode: str) -> BotConfig:
    return BotConfig.model_validate(
        {"bot_id": bot_id, "strategy": "SmaCross", "pairs": ("BTC/USDT",), "timeframe": "1m",
         "exchange": "binance" if mode == "live" else "simulated", "mode": mode}
    )  # fmt: skip


def test_live_bots_with_fresh_candles_are_ok_and_a_stalled_one_is_counted(store: SqlTradingStore) -> None:
    store.save_bot(bot("paper-1", "paper"))
    store.set_bot_status("paper-1", BotStatus.RUNNING)
    assert live_exchange_health(store, NOW) is None, "no live bot: nothing to judge (not configured)"

    store.save_bot(bot("live-1", "live"))
    store.save_bot(bot("live-2", "live"))
    assert live_exchange_health(store, NOW) is None, "stopped live bots need no venue"

    store.set_bot_status("live-1", BotStatus.RUNNING)
    store.set_bot_status("live-2", BotStatus.RUNNING)
    store.save_progress("live-1", "BTC/USDT", NOW - 2 * MINUTE)
    never_fed = (False, "live bots without recent candles: 1 of 2 on binance")
    assert live_exchange_health(store, NOW) == never_fed, "never fed; no bot id is given away"

    store.save_progress("live-2", "BTC/USDT", NOW - 2 * MINUTE)
    assert live_exchange_health(store, NOW) == (True, "2 live bot(s) on binance, candles up to date")

    store.save_progress("live-1", "BTC/USDT", NOW - 6 * MINUTE)  # last candle closed 5 min ago: 4 missed
    ok, detail = live_exchange_health(store, NOW) or (True, "")
    assert not ok and detail == "live bots without recent candles: 1 of 2 on binance"
    assert "live-1" not in detail
