"""The bot's trading rules, end to end on a real SQLite/PostgreSQL store and the simulated exchange.

Candles are written by hand so each rule's price is known exactly; strategies are user files whose
signals fire on given dates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tradefleet.adapters.exchanges.simulated import SimulatedVenue
from tradefleet.bootstrap import Platform, build_paper_fleet, build_platform
from tradefleet.config import load_settings
from tradefleet.core.bots import BotConfig, BotStatus
from tradefleet.core.errors import LookAheadError, TemporaryExchangeError
from tradefleet.core.events import DomainEvent, TradeExecuted
from tradefleet.core.orders import OrderIntent, OrderSide, OrderStatus, OrderType
from tradefleet.core.ports import ExchangeOrder, OrderRequest
from tradefleet.core.risk import KillSwitchLevel
from tradefleet.engine.bot import BotRuntime
from tradefleet.engine.clock import SimClock
from tradefleet.engine.fleet import Fleet

PAIR = "TST/USDT"
TF_MS = 300_000
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
SLIP = 5 / 10_000
FEE = 0.001

STRATEGY = """
import pandas as pd
from tradefleet import IStrategy


def _ms(df):
    return (df["date"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


class Scripted(IStrategy):
    timeframe = "5m"
    minimal_roi = {roi}
    stoploss = {stoploss}
    trailing_stop = {trailing}
    startup_candle_count = 0
    ENTRIES = {entries}
    EXITS = {exits}

    def populate_indicators(self, df):
        return df

    def populate_entry_trend(self, df):
        df["enter_long"] = _ms(df).isin(self.ENTRIES).astype(int)
        df["enter_tag"] = "scripted"
        return df

    def populate_exit_trend(self, df):
        df["exit_long"] = _ms(df).isin(self.EXITS).astype(int)
        return df
"""


def candles(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Return a 5m candle frame from (open, high, low, close) rows starting at T0."""
    arr = np.array(rows, dtype="float64")
    dates = pd.to_datetime(T0 + TF_MS * np.arange(len(rows)), unit="ms", utc=True).astype("datetime64[ms, UTC]")
    return pd.DataFrame(
        {
            "date": dates,
            "open": arr[:, 0],
            "high": arr[:, 1],
            "low": arr[:, 2],
            "close": arr[:, 3],
            "volume": 1.0,
        }
    )


def flat(n: int, price: float = 100.0) -> list[tuple[float, float, float, float]]:
    return [(price, price + 0.5, price - 0.5, price)] * n


def at(i: int) -> int:
    return T0 + i * TF_MS


class Recorder:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, event: DomainEvent) -> None:
        self.events.append(event)

    def trades(self) -> list[TradeExecuted]:
        return [e for e in self.events if isinstance(e, TradeExecuted)]


class Harness:
    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.dir = tmp_path / "data"
        self.settings = load_settings(overrides={"data_dir": self.dir, "database.url": database_url}, env={})
        self.platform: Platform = build_platform(self.settings)
        self.sink = Recorder()
        self.fleet: Fleet | None = None
        self.clock = SimClock(T0)

    def setup(
        self,
        rows: list[tuple[float, float, float, float]],
        *,
        entries: list[int],
        exits: list[int] = (),  # type: ignore[assignment]
        roi: dict[str, float] | None = None,
        stoploss: float = -0.10,
        trailing: str = "False",
        risk: dict[str, Any] | None = None,
    ) -> None:
        self.platform.candles.write("simulated", PAIR, "5m", candles(rows))
        strategies = self.settings.strategies_dir
        strategies.mkdir(parents=True, exist_ok=True)
        (strategies / "scripted.py").write_text(
            STRATEGY.format(
                roi=roi or {"0": 10.0},
                stoploss=stoploss,
                trailing=trailing,
                entries=[at(i) for i in entries],
                exits=[at(i) for i in exits],
            )
        )
        self.bot = BotConfig(
            bot_id="scripted",
            strategy="Scripted",
            pairs=(PAIR,),
            timeframe="5m",
            starting_balance=1000.0,
            risk={"stake_mode": "fixed", "stake_amount": 500.0, **(risk or {})},
        )

    def build(self) -> Fleet:
        self.fleet = build_paper_fleet(
            self.platform,
            [self.bot],
            name="t",
            speed=1,
            sink=self.sink,
            clock=self.clock,
            start_ms=T0,
            check_causal=False,
        )
        return self.fleet

    def run_to(self, i: int) -> None:
        """Deliver candles up to and including candle ``i`` (it has closed)."""
        assert self.fleet is not None
        now = at(i) + TF_MS
        self.clock.set(max(now, self.clock.now_ms()))
        self.fleet.step(now)

    @property
    def venue(self) -> SimulatedVenue:
        return self.platform.venues["t"]

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.shutdown()
        self.platform.close()


@pytest.fixture
def harness(tmp_path: Path, database_url: str) -> Any:
    h = Harness(tmp_path, database_url)
    yield h
    h.close()


def test_entry_signal_buys_at_next_open_with_slippage_and_fee_then_places_the_stop(harness: Harness) -> None:
    rows = flat(10)
    rows[4] = (101.0, 101.5, 100.5, 101.0)  # the open after the signal candle (3)
    harness.setup(rows, entries=[3], stoploss=-0.05)
    harness.build()
    harness.run_to(5)
    (entry,) = harness.sink.trades()
    assert entry.action == "entry"
    assert entry.price == pytest.approx(101.0 * (1 + SLIP))
    assert entry.fee == pytest.approx(entry.amount * entry.price * FEE)
    assert entry.amount * 100.0 == pytest.approx(500.0, rel=1e-6)  # sized on the signal candle's close
    stops = [o for o in harness.platform.store.live_orders("scripted") if o.intent is OrderIntent.STOP]
    assert len(stops) == 1 and stops[0].stop_price == pytest.approx(entry.price * 0.95, rel=1e-9)


def test_stoploss_fills_at_stop_price_when_candle_trades_through_it(harness: Harness) -> None:
    rows = flat(12)
    rows[7] = (100.0, 100.2, 90.0, 95.0)
    harness.setup(rows, entries=[3], stoploss=-0.05)
    harness.build()
    harness.run_to(11)
    entry, exit_ = harness.sink.trades()
    stop = entry.price * 0.95
    assert exit_.reason == "stop_loss"
    assert exit_.price == pytest.approx(round(stop, 8) * (1 - SLIP), rel=1e-9)
    assert exit_.ts_ms == at(7) + TF_MS


def test_stoploss_fills_at_open_when_candle_gaps_down_below_it(harness: Harness) -> None:
    rows = flat(12)
    rows[7] = (80.0, 81.0, 79.0, 80.5)
    harness.setup(rows, entries=[3], stoploss=-0.05)
    harness.build()
    harness.run_to(11)
    _, exit_ = harness.sink.trades()
    assert exit_.reason == "stop_loss"
    assert exit_.price == pytest.approx(80.0 * (1 - SLIP))


def test_roi_is_checked_on_the_close_and_exits_at_the_next_open(harness: Harness) -> None:
    rows = flat(14)
    rows[6] = (100.0, 104.0, 100.0, 103.5)  # +3.5% close: ROI of 3% is reached
    rows[7] = (103.0, 103.5, 102.5, 103.0)
    harness.setup(rows, entries=[3], roi={"0": 0.03})
    harness.build()
    harness.run_to(13)
    entry, exit_ = harness.sink.trades()
    assert exit_.reason == "roi"
    assert exit_.price == pytest.approx(103.0 * (1 - SLIP))
    assert exit_.ts_ms == at(7)
    assert exit_.profit_abs == pytest.approx(
        entry.amount * exit_.price - exit_.fee - (entry.amount * entry.price + entry.fee), rel=1e-9
    )


def test_roi_table_steps_down_with_the_age_of_the_trade(harness: Harness) -> None:
    rows = flat(20)
    for i in range(5, 20):
        rows[i] = (101.0, 101.2, 100.8, 101.0)  # +1% flat: below 5% but above the 0.5% step after 30 min
    harness.setup(rows, entries=[3], roi={"0": 0.05, "30": 0.005})
    harness.build()
    harness.run_to(19)
    _, exit_ = harness.sink.trades()
    assert exit_.reason == "roi"
    # trade opened at the open of candle 4; 30 minutes later is the close of candle 9
    assert exit_.ts_ms == at(10)


def test_exit_signal_sells_at_next_open(harness: Harness) -> None:
    rows = flat(12)
    rows[8] = (99.0, 99.5, 98.5, 99.0)
    harness.setup(rows, entries=[3], exits=[7])
    harness.build()
    harness.run_to(11)
    _, exit_ = harness.sink.trades()
    assert exit_.reason == "exit_signal" and exit_.price == pytest.approx(99.0 * (1 - SLIP))


def test_trailing_stop_follows_the_high_and_exits_as_trailing_stop_loss(harness: Harness) -> None:
    rows = flat(16)
    rows[5] = (100.0, 120.0, 99.8, 119.0)  # new high → stop moves to 120 × 0.95 = 114
    rows[6] = (119.0, 119.5, 110.0, 112.0)  # trades through 114
    harness.setup(rows, entries=[3], stoploss=-0.05, trailing="True")
    harness.build()
    harness.run_to(15)
    _, exit_ = harness.sink.trades()
    assert exit_.reason == "trailing_stop_loss"
    assert exit_.price == pytest.approx(114.0 * (1 - SLIP), rel=1e-9)
    assert exit_.profit_abs is not None and exit_.profit_abs > 0


def test_max_open_trades_and_cooldown_hold_back_entries(harness: Harness) -> None:
    rows = flat(20)
    harness.setup(rows, entries=[3, 4, 5, 8, 9], exits=[6], risk={"cooldown": {"candles": 3}})
    harness.build()
    harness.run_to(19)
    entries = [t for t in harness.sink.trades() if t.action == "entry"]
    # 3 enters; 4 and 5 are refused (one trade per pair); the exit fills at 7's open, so the pair cools down
    # for candles 7, 8 and 9: the signal on 8 is refused, the one on 9 (decided at 10's open) goes through
    assert [t.ts_ms for t in entries] == [at(4), at(10)]
    bot = harness.fleet.bots[0]  # type: ignore[union-attr]
    assert (
        bot.counters.skipped_entries.get("max_open_trades", 0) + bot.counters.skipped_entries.get("max_per_pair", 0)
        >= 2
    )
    assert bot.counters.skipped_entries.get("cooldown", 0) == 1


def test_kill_switch_levels_halt_cancel_and_flatten(harness: Harness) -> None:
    rows = flat(20)
    harness.setup(rows, entries=[3, 12], stoploss=-0.05)
    fleet = harness.build()
    store = harness.platform.store
    harness.run_to(5)
    assert any(o.intent is OrderIntent.STOP for o in store.live_orders("scripted"))

    store.set_kill_switch("scripted", KillSwitchLevel.CANCEL_ALL, "admin", "test")
    fleet.check_kill_switches()
    assert not store.live_orders("scripted"), "CANCEL_ALL leaves no order on the exchange"
    assert not harness.venue.open_orders("scripted", None)

    store.set_kill_switch("scripted", KillSwitchLevel.FLATTEN, "admin", "test")
    fleet.check_kill_switches()
    assert not store.open_trades("scripted")
    assert harness.sink.trades()[-1].reason == "emergency_flatten"
    harness.run_to(19)
    assert len([t for t in harness.sink.trades() if t.action == "entry"]) == 1, "no entries while halted"


def test_stop_entries_and_resume_take_effect_on_a_running_bot(harness: Harness) -> None:
    rows = flat(20)
    harness.setup(rows, entries=[3, 9], exits=[6])
    fleet = harness.build()
    store = harness.platform.store
    store.set_bot_status("scripted", BotStatus.STOPPING_ENTRIES)
    fleet.check_kill_switches()
    harness.run_to(7)
    assert harness.sink.trades() == [], "no entry while entries are stopped"
    store.set_bot_status("scripted", BotStatus.RUNNING)
    fleet.check_kill_switches()
    harness.run_to(12)
    assert [t.ts_ms for t in harness.sink.trades() if t.action == "entry"] == [at(10)]


def test_restart_resumes_open_trade_with_its_stop_and_sends_nothing_twice(harness: Harness) -> None:
    rows = flat(20)
    harness.setup(rows, entries=[3], exits=[15], stoploss=-0.05)
    harness.build()
    harness.run_to(8)
    harness.fleet.shutdown()  # type: ignore[union-attr]
    harness.fleet = None
    before = [(o.client_order_id, o.status) for o in harness.platform.store.list_orders("scripted")]

    harness.build()  # same data dir: reconciles and resumes
    bot = harness.fleet.bots[0]  # type: ignore[union-attr]
    assert [t.pair for t in bot.trades[PAIR]] == [PAIR]
    assert [(o.client_order_id, o.status) for o in harness.platform.store.list_orders("scripted")] == before
    harness.run_to(19)
    orders = harness.platform.store.list_orders("scripted")
    ids = [o.client_order_id for o in orders]
    assert len(ids) == len(set(ids))
    ledger = harness.venue.ledger.query("SELECT client_order_id FROM orders WHERE account = 'scripted'")
    assert sorted(r[0] for r in ledger) == sorted(ids)
    assert all(o.status.is_terminal for o in orders if o.status is not OrderStatus.OPEN)
    assert harness.sink.trades()[-1].reason == "exit_signal"
    harness.fleet.flush()  # type: ignore[union-attr]
    assert harness.platform.store.pending_events() == [], "every event the sink took is marked published"


LOOKING_AHEAD = """
from tradefleet import IStrategy

class Clairvoyant(IStrategy):
    timeframe = "5m"
    stoploss = -0.5

    def populate_indicators(self, df):
        df["tomorrow"] = df["close"].shift(-1)
        return df

    def populate_entry_trend(self, df):
        df["enter_long"] = (df["tomorrow"] > df["close"] * 1.001).astype(int)
        return df

    def populate_exit_trend(self, df):
        df["exit_long"] = (df["tomorrow"] < df["close"]).astype(int)
        return df
"""


def _noisy(n: int) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    return [(o, max(o, c) * 1.002, min(o, c) * 0.998, c) for o, c in zip(opens, close, strict=True)]


def test_a_strategy_that_looks_ahead_is_refused_at_start(tmp_path: Path, database_url: str) -> None:
    h = Harness(tmp_path, database_url)
    try:
        h.platform.candles.write("simulated", PAIR, "5m", candles(_noisy(300)))
        h.settings.strategies_dir.mkdir(parents=True)
        (h.settings.strategies_dir / "clairvoyant.py").write_text(LOOKING_AHEAD)
        bot = BotConfig(bot_id="seer", strategy="Clairvoyant", pairs=(PAIR,), starting_balance=1000.0)
        with pytest.raises(LookAheadError, match="tomorrow"):
            build_paper_fleet(h.platform, [bot], name="t", speed=1, sink=h.sink, clock=h.clock, start_ms=T0)
        assert h.platform.store.list_orders("seer") == []
    finally:
        h.platform.close()


def test_signals_of_a_peeking_strategy_cannot_act_before_the_next_candle(tmp_path: Path, database_url: str) -> None:
    h = Harness(tmp_path, database_url)
    try:
        h.platform.candles.write("simulated", PAIR, "5m", candles(_noisy(200)))
        h.settings.strategies_dir.mkdir(parents=True)
        (h.settings.strategies_dir / "clairvoyant.py").write_text(LOOKING_AHEAD)
        bot = BotConfig(bot_id="seer", strategy="Clairvoyant", pairs=(PAIR,), starting_balance=1000.0)
        h.fleet = build_paper_fleet(
            h.platform, [bot], name="t", speed=1, sink=h.sink, clock=h.clock, start_ms=T0, check_causal=False
        )
        for i in range(200):  # live delivery: one closed candle at a time
            h.run_to(i)
        # the future column is NaN on the newest candle, the only one a bot acts on: no trade can happen
        assert h.sink.trades() == []
    finally:
        h.close()


def test_an_exit_refused_in_the_candle_that_raised_the_trailing_stop_leaves_the_trade_protected(
    harness: Harness,
) -> None:
    """One candle raises the trailing stop (a new stop at this candle's time and price) and meets ROI; the
    exit cancels that stop, and the venue refuses the exit. The stop put back must be a new order: re-using
    the cancelled stop's client order id would find it as a replay and leave the trade with no stop."""
    bot = _trail_and_refuse_the_roi_exit(harness)
    venue = harness.venue
    (trade,) = harness.platform.store.open_trades("scripted")
    stops = [o for o in harness.platform.store.list_orders("scripted") if o.intent is OrderIntent.STOP]
    assert [o.status for o in stops][:2] == [OrderStatus.CANCELED, OrderStatus.CANCELED], "initial, trailed"
    resting = [o for o in venue.open_orders(bot.bot_id, None) if o.type is OrderType.STOP]
    assert [(o.amount, o.status) for o in resting] == [(trade.amount, OrderStatus.OPEN)], stops
    assert resting[0].stop_price == pytest.approx(trade.stop_price) and trade.stop_price > 95.0, "the trailed stop"


def _trail_and_refuse_the_roi_exit(harness: Harness) -> BotRuntime:
    """Candle 7 raises the trailing stop and meets ROI; the venue refuses every market sell (a 503)."""
    rows = flat(8) + flat(6, 105.5)
    rows[7] = (100.0, 106.0, 100.0, 105.5)  # a high candle: the trailing stop moves and ROI is reached
    harness.setup(rows, entries=[3], stoploss=-0.05, trailing="True", roi={"0": 0.04})
    fleet = harness.build()
    venue = harness.venue
    refused: list[str] = []
    place = venue.place

    def refuse_exits(account: str, request: OrderRequest) -> ExchangeOrder:
        if request.type is OrderType.MARKET and request.side is OrderSide.SELL:
            refused.append(request.client_order_id)
            raise TemporaryExchangeError("simulated 503 Service Unavailable on create_order")
        return place(account, request)

    venue.place = refuse_exits  # type: ignore[method-assign]
    harness.run_to(7)
    assert refused, "the ROI exit was tried"
    return fleet.bots[0]


def test_replaying_a_candle_whose_exit_was_refused_keeps_the_trade_protected(harness: Harness) -> None:
    """A crash after the refused exit, before the candle's progress was saved: the restarted bot replays
    the candle and decides the same exit. It must not cancel the stop for an exit that is only a replay of
    the refusal (the exit is not sent again), which would leave the trade with no stop."""
    _trail_and_refuse_the_roi_exit(harness)
    assert harness.platform.store.load_progress("scripted").get(PAIR, -1) < at(7), "candle 7 was not saved as done"
    restarted = harness.build()  # the same database and venue ledger, a new runtime: as after kill -9
    harness.run_to(7)
    (trade,) = harness.platform.store.open_trades("scripted")
    bot = restarted.bots[0]
    resting = [o for o in harness.venue.open_orders(bot.bot_id, None) if o.type is OrderType.STOP]
    assert [(o.amount, o.status) for o in resting] == [(trade.amount, OrderStatus.OPEN)]
    assert bot._live_stop(bot.trades[PAIR][0]) is not None
