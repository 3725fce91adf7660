"""Backtest metrics: hand-computed values on small curves and trade lists, and the edge cases."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from tradefleet.core.metrics import (
    DAY_MS,
    Metrics,
    TradeLike,
    compute_metrics,
    daily_values,
    drawdown,
    market_change,
)

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR = 3_600_000


@dataclass(frozen=True)
class Trade:
    pair: str
    open_ms: int
    close_ms: int | None
    profit_abs: float
    profit_ratio: float
    exit_reason: str = "roi"
    enter_tag: str = ""
    is_open: bool = False


def _days(n: int) -> np.ndarray:
    return T0 + DAY_MS * np.arange(n, dtype=np.int64)


# -- equity curve: [100, 110, 99, 120] over four daily candles, starting balance 100 ------------------------
# Daily values 100 (before) → 100, 110, 99, 120, so the daily returns are 0, +0.1, −0.1, +21/99.


@pytest.fixture
def four_days() -> Metrics:
    return compute_metrics([], _days(4), np.array([100.0, 110.0, 99.0, 120.0]), 100.0, DAY_MS)


def test_balance_and_profit_come_from_the_equity_curve(four_days: Metrics) -> None:
    assert (four_days.starting_balance, four_days.final_balance) == (100.0, 120.0)
    assert four_days.profit_abs == pytest.approx(20.0)
    assert four_days.profit_ratio == pytest.approx(0.2)
    assert four_days.days == 4.0
    assert (four_days.start_ms, four_days.end_ms) == (T0, T0 + 3 * DAY_MS)


def test_sharpe_is_mean_over_sample_std_of_daily_returns_times_root_365(four_days: Metrics) -> None:
    # mean = (0 + 0.1 − 0.1 + 0.2121…) / 4 = 0.0530303…, sample std = 0.1338489…
    assert four_days.sharpe == pytest.approx(0.05303030303030303 / 0.13384886560822895 * math.sqrt(365))
    assert four_days.sharpe == pytest.approx(7.569302229256455)


def test_sortino_divides_by_downside_deviation_over_all_days(four_days: Metrics) -> None:
    # downside deviation = √((0² + 0² + 0.1² + 0²) / 4) = 0.05
    assert four_days.sortino == pytest.approx(0.05303030303030303 / 0.05 * math.sqrt(365))
    assert four_days.sortino == pytest.approx(20.2628503366363)


def test_cagr_annualises_the_total_return_over_365_days(four_days: Metrics) -> None:
    assert four_days.cagr == pytest.approx(1.2 ** (365 / 4) - 1)
    assert four_days.calmar == pytest.approx((1.2 ** (365 / 4) - 1) / 0.1)


def test_max_drawdown_reports_depth_and_the_peak_trough_and_recovery_dates(four_days: Metrics) -> None:
    assert four_days.max_drawdown_abs == pytest.approx(11.0)
    assert four_days.max_drawdown_ratio == pytest.approx(0.1)
    assert four_days.max_drawdown_peak_ms == T0 + DAY_MS
    assert four_days.max_drawdown_trough_ms == T0 + 2 * DAY_MS
    assert four_days.max_drawdown_recovery_ms == T0 + 3 * DAY_MS


def test_drawdown_without_recovery_has_no_recovery_date() -> None:
    m = compute_metrics([], _days(3), np.array([100.0, 120.0, 90.0]), 100.0, DAY_MS)
    assert m.max_drawdown_ratio == pytest.approx(0.25)
    assert m.max_drawdown_abs == pytest.approx(30.0)
    assert (m.max_drawdown_peak_ms, m.max_drawdown_trough_ms) == (T0 + DAY_MS, T0 + 2 * DAY_MS)
    assert m.max_drawdown_recovery_ms is None


def test_drawdown_is_measured_from_the_starting_balance_one_candle_before_the_curve() -> None:
    m = compute_metrics([], _days(2), np.array([95.0, 100.0]), 100.0, DAY_MS)
    assert m.max_drawdown_ratio == pytest.approx(0.05)
    assert m.max_drawdown_peak_ms == T0 - DAY_MS
    assert m.max_drawdown_trough_ms == T0
    assert m.max_drawdown_recovery_ms == T0 + DAY_MS


def test_the_deepest_relative_drawdown_wins_over_a_larger_absolute_one() -> None:
    # 100 → 50 is −50 %; 1000 → 800 is −200 quote but only −20 %.
    m = compute_metrics([], _days(4), np.array([50.0, 1000.0, 800.0, 900.0]), 100.0, DAY_MS)
    assert m.max_drawdown_ratio == pytest.approx(0.5)
    assert m.max_drawdown_abs == pytest.approx(50.0)


def test_intraday_curve_is_resampled_to_the_last_value_of_each_utc_day() -> None:
    times = T0 + HOUR * np.array([0, 12, 23, 24, 30, 24 * 3 + 1])  # day 0, day 0, day 0, day 1, day 1, day 3
    values = np.array([101.0, 102.0, 103.0, 99.0, 104.0, 110.0])
    days, daily = daily_values(times, values, 100.0)
    assert list(days) == [T0 - DAY_MS, T0, T0 + DAY_MS, T0 + 2 * DAY_MS, T0 + 3 * DAY_MS]
    assert list(daily) == [100.0, 103.0, 104.0, 104.0, 110.0]  # day 2 has no point: the value carries over


def test_drawdown_series_is_relative_to_the_running_peak() -> None:
    assert drawdown([100.0, 110.0, 99.0, 120.0]) == pytest.approx([0.0, 0.0, 0.1, 0.0])
    assert drawdown([90.0], starting_balance=100.0) == pytest.approx([0.1])


# -- trades ------------------------------------------------------------------------------------------------

TRADES: list[TradeLike] = [
    Trade("A/USDT", T0, T0 + 1 * HOUR, 10.0, 0.10, "roi", "breakout"),
    Trade("A/USDT", T0, T0 + 2 * HOUR, -5.0, -0.05, "stop_loss", "breakout"),
    Trade("B/USDT", T0, T0 + 3 * HOUR, 20.0, 0.20, "roi", "dip"),
    Trade("B/USDT", T0, T0 + 4 * HOUR, -5.0, -0.05, "stop_loss", "dip"),
    Trade("B/USDT", T0, T0 + 5 * HOUR, 0.0, 0.0, "exit_signal", ""),
    Trade("C/USDT", T0, None, 0.0, 0.0, "", "dip", is_open=True),  # still open: only counted as open
]


@pytest.fixture
def traded() -> Metrics:
    return compute_metrics(TRADES, _days(10), np.full(10, 1015.0), 1000.0, DAY_MS, market_change=0.25)


def test_trade_counts_exclude_trades_still_open(traded: Metrics) -> None:
    assert (traded.trades, traded.open_trades) == (5, 1)
    assert (traded.wins, traded.draws, traded.losses) == (2, 1, 2)
    assert traded.win_rate == pytest.approx(0.4)


def test_profit_factor_is_gross_profit_over_gross_loss(traded: Metrics) -> None:
    assert (traded.gross_profit, traded.gross_loss) == (30.0, 10.0)
    assert traded.profit_factor == pytest.approx(3.0)


def test_expectancy_is_the_mean_profit_per_trade_and_its_ratio_per_unit_risked(traded: Metrics) -> None:
    assert traded.expectancy == pytest.approx(20.0 / 5)
    # avg win 15, avg loss 5, win rate 0.4: (1 + 15/5) × 0.4 − 1
    assert traded.expectancy_ratio == pytest.approx(0.6)


def test_durations_and_trade_frequency(traded: Metrics) -> None:
    assert traded.avg_duration_ms == 3 * HOUR
    assert traded.avg_winner_duration_ms == 2 * HOUR
    assert traded.avg_loser_duration_ms == 3 * HOUR
    assert traded.trades_per_day == pytest.approx(0.5)


def test_best_and_worst_trade_and_pair(traded: Metrics) -> None:
    assert traded.best_trade is not None
    assert traded.worst_trade is not None
    assert (traded.best_trade.pair, traded.best_trade.profit_ratio) == ("B/USDT", 0.20)
    assert traded.worst_trade.profit_ratio == -0.05
    assert traded.best_pair is not None
    assert traded.worst_pair is not None
    assert (traded.best_pair.key, traded.best_pair.total_profit_abs) == ("B/USDT", 15.0)
    assert (traded.worst_pair.key, traded.worst_pair.total_profit_abs) == ("A/USDT", 5.0)
    assert traded.market_change == 0.25


def test_per_pair_table_sorted_by_profit_with_ratios_against_the_starting_balance(traded: Metrics) -> None:
    b, a = traded.per_pair
    assert (b.key, b.trades, b.wins, b.draws, b.losses) == ("B/USDT", 3, 1, 1, 1)
    assert b.avg_profit_ratio == pytest.approx(0.05)
    assert b.total_profit_ratio == pytest.approx(0.015)
    assert b.avg_duration_ms == 4 * HOUR
    assert (a.key, a.trades) == ("A/USDT", 2)
    assert a.avg_profit_ratio == pytest.approx(0.025)
    assert a.total_profit_ratio == pytest.approx(0.005)


def test_pairs_without_trades_are_listed_when_asked() -> None:
    m = compute_metrics(TRADES, _days(1), [1000.0], 1000.0, DAY_MS, pairs=["A/USDT", "D/USDT"])
    d = next(g for g in m.per_pair if g.key == "D/USDT")
    assert (d.trades, d.avg_profit_ratio, d.win_rate, d.total_profit_abs) == (0, None, None, 0.0)
    assert m.worst_pair is not None
    assert m.worst_pair.key == "A/USDT"  # the empty pair is not "worst"


def test_exit_reason_and_entry_tag_tables(traded: Metrics) -> None:
    reasons = {g.key: (g.trades, g.total_profit_abs) for g in traded.exit_reasons}
    assert reasons == {"roi": (2, 30.0), "stop_loss": (2, -10.0), "exit_signal": (1, 0.0)}
    tags = {g.key: (g.trades, g.wins, g.losses) for g in traded.enter_tags}
    assert tags == {"dip": (2, 1, 1), "breakout": (2, 1, 1), "": (1, 0, 0)}
    assert [g.key for g in traded.exit_reasons] == ["roi", "exit_signal", "stop_loss"]


# -- edge cases --------------------------------------------------------------------------------------------


def test_no_trades_and_no_curve_gives_neutral_numbers_and_none_for_undefined_ones() -> None:
    m = compute_metrics([], np.empty(0, dtype=np.int64), np.empty(0), 1000.0, HOUR)
    assert (m.final_balance, m.profit_abs, m.profit_ratio, m.days) == (1000.0, 0.0, 0.0, 0.0)
    assert (m.trades, m.wins, m.losses, m.max_drawdown_ratio) == (0, 0, 0, 0.0)
    assert m.start_ms is None
    assert m.max_drawdown_peak_ms is None
    for name in ("win_rate", "profit_factor", "expectancy", "expectancy_ratio", "trades_per_day", "cagr"):
        assert getattr(m, name) is None, name
    for name in ("sharpe", "sortino", "calmar", "best_trade", "best_pair", "avg_duration_ms"):
        assert getattr(m, name) is None, name
    assert (m.per_pair, m.exit_reasons, m.enter_tags) == ((), (), ())


def test_all_winners_have_no_profit_factor_or_expectancy_ratio_and_rising_curve_no_sortino() -> None:
    trades = [Trade("A/USDT", T0, T0 + HOUR, 5.0, 0.05), Trade("A/USDT", T0, T0 + HOUR, 15.0, 0.15)]
    m = compute_metrics(trades, _days(3), [105.0, 110.0, 120.0], 100.0, DAY_MS)
    assert m.win_rate == 1.0
    assert m.profit_factor is None  # infinite: no losses
    assert m.expectancy == pytest.approx(10.0)
    assert m.expectancy_ratio is None
    assert m.avg_loser_duration_ms is None
    assert m.sortino is None  # no losing day: downside deviation 0
    assert m.sharpe is not None
    assert m.sharpe > 0
    assert m.max_drawdown_ratio == 0.0
    assert m.calmar is None


def test_flat_equity_has_no_sharpe_sortino_or_drawdown() -> None:
    m = compute_metrics([], _days(30), np.full(30, 1000.0), 1000.0, DAY_MS)
    assert (m.sharpe, m.sortino, m.calmar) == (None, None, None)
    assert m.cagr == 0.0
    assert (m.max_drawdown_ratio, m.max_drawdown_abs, m.max_drawdown_peak_ms) == (0.0, 0.0, None)


def test_one_day_gives_one_daily_return_so_no_sharpe_but_a_cagr() -> None:
    times = T0 + HOUR * np.arange(24, dtype=np.int64)
    m = compute_metrics([], times, np.linspace(1000.0, 1010.0, 24), 1000.0, HOUR)
    assert m.days == 1.0
    assert (m.sharpe, m.sortino) == (None, None)
    assert m.cagr == pytest.approx(1.01**365 - 1)


def test_cagr_too_large_for_a_float_is_none() -> None:
    m = compute_metrics([], np.array([T0]), [200.0], 100.0, 60_000)  # doubling in one minute
    assert m.cagr is None
    assert m.calmar is None


def test_total_loss_gives_cagr_minus_one() -> None:
    m = compute_metrics([], _days(2), [50.0, 0.0], 100.0, DAY_MS)
    assert m.cagr == -1.0
    assert m.max_drawdown_ratio == 1.0


def test_mismatched_curve_arrays_are_rejected() -> None:
    with pytest.raises(ValueError, match="one length"):
        compute_metrics([], _days(2), [1.0], 1.0, DAY_MS)


def test_market_change_is_the_mean_over_pairs_of_last_over_first_close() -> None:
    closes = {"A/USDT": [100.0, 150.0], "B/USDT": [np.nan, 10.0, 12.0, 9.0], "C/USDT": [5.0]}
    assert market_change(closes) == pytest.approx((0.5 + (-0.1)) / 2)
    assert market_change({}) is None


def test_to_dict_is_plain_json_and_from_dict_rebuilds_the_metrics(traded: Metrics) -> None:
    data = json.loads(json.dumps(traded.to_dict(), allow_nan=False))
    assert data["per_pair"][0]["key"] == "B/USDT"
    assert data["profit_factor"] == 3.0
    assert Metrics.from_dict(data) == traded
