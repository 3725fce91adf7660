"""Risk settings and the pure rules of the risk gate: ROI table, trailing stop, stake sizing, protections."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradefleet.core.risk import (
    CooldownSettings,
    KillSwitchLevel,
    MaxDrawdownSettings,
    ProtectionState,
    RiskSettings,
    StoplossGuardSettings,
    roi_threshold,
    stake_for_entry,
    trailing_stop,
)

TF = 300_000  # 5m candles
T0 = 1_704_067_200_000

# -- RiskSettings -----------------------------------------------------------------------------------------


def test_default_settings_are_coherent() -> None:
    risk = RiskSettings()
    assert (risk.stake_mode, risk.stake_amount, risk.max_open_trades, risk.max_per_pair) == (
        "percent",
        30.0,
        3,
        1,
    )
    assert risk.stake_amount * risk.max_open_trades <= 100


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"stake_amount": -10.0}, ["stake_amount"]),
        ({"stake_amount": 0.0}, ["stake_amount"]),
        ({"stake_mode": "fixed", "stake_amount": -5.0}, ["stake_amount"]),
        ({"max_open_trades": 0}, ["max_open_trades"]),
        ({"max_per_pair": 0}, ["max_per_pair"]),
        (
            {"max_open_trades": 2, "max_per_pair": 3, "stake_amount": 10.0},
            ["max_per_pair", "max_open_trades"],
        ),
        (
            {"stake_mode": "percent", "stake_amount": 150.0, "max_open_trades": 1, "max_per_pair": 1},
            ["stake_amount"],
        ),
        (
            {"stake_mode": "percent", "stake_amount": 40.0, "max_open_trades": 3},
            ["stake_amount", "max_open_trades"],
        ),
        ({"stake_mode": "kelly"}, ["stake_mode"]),
        ({"stoploss": 0.1}, ["stoploss"]),
        ({"stoploss": -1.0}, ["stoploss"]),
        ({"stake_amnt": 10.0}, ["stake_amnt"]),
        ({"cooldown": {"candels": 2}}, ["candels"]),
        ({"max_drawdown": {"max_drawdown": 1.5}}, ["max_drawdown"]),
        ({"stoploss_guard": {"trade_limit": 0}}, ["trade_limit"]),
    ],
    ids=[
        "negative_stake",
        "zero_stake",
        "negative_fixed_stake",
        "zero_max_open_trades",
        "zero_max_per_pair",
        "max_per_pair_above_max_open_trades",
        "percent_above_100",
        "percent_times_trades_above_100",
        "unknown_stake_mode",
        "positive_stoploss",
        "stoploss_of_minus_100_percent",
        "unknown_key",
        "unknown_nested_key",
        "drawdown_fraction_above_1",
        "zero_guard_trade_limit",
    ],
)
def test_risk_settings_reject_contradictions_with_a_message_naming_the_field(
    fields: dict[str, Any], named: list[str]
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        RiskSettings(**fields)
    message = str(caught.value)
    for name in named:
        assert name in message, f"{name!r} not named in: {message}"


@pytest.mark.parametrize(
    "fields",
    [
        {"stake_mode": "percent", "stake_amount": 25.0, "max_open_trades": 4},
        {"stake_mode": "percent", "stake_amount": 100.0, "max_open_trades": 1},
        {"stake_mode": "percent", "stake_amount": 100 / 3, "max_open_trades": 3},
        {"stake_mode": "fixed", "stake_amount": 500.0, "max_open_trades": 10},
        {"max_open_trades": 5, "max_per_pair": 5, "stake_amount": 20.0},
        {"stoploss": -0.05},
    ],
    ids=[
        "4x25_percent",
        "one_trade_at_100_percent",
        "3x_one_third",
        "fixed_above_100",
        "per_pair_eq_max",
        "stop",
    ],
)
def test_risk_settings_accept_combinations_on_the_boundary(fields: dict[str, Any]) -> None:
    risk = RiskSettings(**fields)
    for key, value in fields.items():
        assert getattr(risk, key) == value


def test_risk_settings_are_frozen() -> None:
    risk = RiskSettings()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        risk.stake_amount = 10.0  # type: ignore[misc]


def test_kill_switch_levels_escalate() -> None:
    assert KillSwitchLevel.NONE < KillSwitchLevel.HALT_ENTRIES < KillSwitchLevel.CANCEL_ALL < KillSwitchLevel.FLATTEN


# -- roi_threshold ----------------------------------------------------------------------------------------

ROI = [(0, 0.10), (30, 0.05), (60, 0.02), (120, 0.0)]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(0, 0.10), (29.9, 0.10), (30, 0.05), (45, 0.05), (60, 0.02), (119, 0.02), (120, 0.0), (10_000, 0.0)],
)
def test_roi_threshold_is_the_last_entry_whose_start_has_passed(minutes: float, expected: float) -> None:
    assert roi_threshold(ROI, minutes) == expected


def test_roi_threshold_is_none_for_an_empty_table() -> None:
    assert roi_threshold([], 500) is None


def test_roi_threshold_is_none_before_the_first_entry_starts() -> None:
    assert roi_threshold([(20, 0.04), (40, 0.01)], 19.5) is None
    assert roi_threshold([(20, 0.04), (40, 0.01)], 20) == 0.04


# -- trailing_stop ----------------------------------------------------------------------------------------


def test_trailing_stop_follows_the_high_at_the_stoploss_distance() -> None:
    new = trailing_stop(90.0, 100.0, 110.0, -0.10, None, 0.0, False)
    assert new == pytest.approx(99.0)


def test_trailing_stop_never_moves_down_when_the_high_falls_back() -> None:
    assert trailing_stop(99.0, 100.0, 104.0, -0.10, None, 0.0, False) == 99.0


def test_trailing_stop_tightens_to_the_positive_distance_once_profit_exceeds_the_offset() -> None:
    # profit 10 % > offset 5 %: trail 2 % below the high instead of 10 %
    assert trailing_stop(90.0, 100.0, 110.0, -0.10, 0.02, 0.05, False) == pytest.approx(107.8)


def test_trailing_stop_uses_the_stoploss_distance_until_profit_exceeds_the_offset() -> None:
    assert trailing_stop(90.0, 100.0, 104.0, -0.10, 0.02, 0.05, False) == pytest.approx(93.6)
    # exactly at the offset is not beyond it (150 / 100 − 1 == 0.5 exactly in binary floating point)
    assert trailing_stop(90.0, 100.0, 150.0, -0.10, 0.02, 0.5, False) == pytest.approx(135.0)


def test_trailing_stop_with_only_offset_is_reached_stays_put_below_the_offset() -> None:
    assert trailing_stop(90.0, 100.0, 104.0, -0.10, 0.02, 0.05, True) == 90.0


def test_trailing_stop_with_only_offset_is_reached_trails_once_the_offset_is_reached() -> None:
    assert trailing_stop(90.0, 100.0, 110.0, -0.10, 0.02, 0.05, True) == pytest.approx(107.8)
    # at exactly the offset trailing starts, at the stoploss distance (positive applies beyond the offset)
    assert trailing_stop(90.0, 100.0, 150.0, -0.10, 0.02, 0.5, True) == pytest.approx(135.0)


@settings(max_examples=300, deadline=None)
@given(
    open_rate=st.floats(min_value=0.01, max_value=1e5),
    moves=st.lists(st.floats(min_value=0.5, max_value=2.0), min_size=1, max_size=30),
    stoploss=st.floats(min_value=-0.99, max_value=-0.001),
    positive=st.one_of(st.none(), st.floats(min_value=0.001, max_value=0.5)),
    offset=st.floats(min_value=0.0, max_value=0.5),
    only_offset=st.booleans(),
)
def test_trailing_stop_only_moves_up_along_any_price_path(
    open_rate: float,
    moves: list[float],
    stoploss: float,
    positive: float | None,
    offset: float,
    only_offset: bool,
) -> None:
    stop = open_rate * (1 + stoploss)
    high = open_rate
    for move in moves:
        high = max(high, open_rate * move)
        new = trailing_stop(stop, open_rate, high, stoploss, positive, offset, only_offset)
        assert new >= stop
        assert new <= high, "a stop above the high so far would trigger at once"
        stop = new


# -- stake_for_entry --------------------------------------------------------------------------------------


def test_fixed_stake_is_used_when_free_cash_covers_it() -> None:
    risk = RiskSettings(stake_mode="fixed", stake_amount=100.0)
    assert stake_for_entry(risk, equity=10_000.0, free_cash=5_000.0, cost_factor=1.002) == 100.0


def test_percent_stake_is_a_share_of_equity() -> None:
    risk = RiskSettings(stake_mode="percent", stake_amount=25.0, max_open_trades=4)
    assert stake_for_entry(risk, equity=8_000.0, free_cash=8_000.0, cost_factor=1.0) == pytest.approx(2_000.0)


def test_stake_is_capped_so_price_fee_and_slippage_fit_in_free_cash() -> None:
    risk = RiskSettings(stake_mode="fixed", stake_amount=1_000.0)
    stake = stake_for_entry(risk, equity=10_000.0, free_cash=501.5, cost_factor=1.003)
    assert stake == pytest.approx(500.0)
    assert stake * 1.003 <= 501.5 + 1e-9


@pytest.mark.parametrize("free_cash", [0.0, -50.0])
def test_stake_is_zero_without_free_cash(free_cash: float) -> None:
    assert stake_for_entry(RiskSettings(), equity=1_000.0, free_cash=free_cash, cost_factor=1.001) == 0.0


# -- ProtectionState --------------------------------------------------------------------------------------


def protections(**fields: Any) -> ProtectionState:
    return ProtectionState(RiskSettings(**fields), timeframe_ms=TF)


def test_cooldown_blocks_the_pair_for_its_candles_after_a_close() -> None:
    state = protections(cooldown=CooldownSettings(candles=2))
    assert state.on_trade_closed("BTC/USDT", T0, "roi") is None

    assert state.entry_block("BTC/USDT", T0 + 2 * TF - 1) == "cooldown"
    assert state.entry_block("BTC/USDT", T0 + 2 * TF) is None


def test_cooldown_blocks_only_the_pair_that_closed() -> None:
    state = protections(cooldown=CooldownSettings(candles=2))
    state.on_trade_closed("BTC/USDT", T0, "roi")
    assert state.entry_block("ETH/USDT", T0) is None


def test_cooldown_of_zero_candles_never_blocks() -> None:
    state = protections()
    state.on_trade_closed("BTC/USDT", T0, "stop_loss")
    assert state.entry_block("BTC/USDT", T0) is None


def test_cooldown_counts_from_the_latest_close_even_if_reported_out_of_order() -> None:
    state = protections(cooldown=CooldownSettings(candles=1))
    state.on_trade_closed("BTC/USDT", T0 + 10 * TF, "roi")
    state.on_trade_closed("BTC/USDT", T0, "roi")
    assert state.entry_block("BTC/USDT", T0 + 10 * TF + TF - 1) == "cooldown"


GUARD = StoplossGuardSettings(enabled=True, lookback_candles=4, trade_limit=2, stop_candles=3)


@pytest.mark.parametrize("reason", ["stop_loss", "trailing_stop_loss"])
def test_stoploss_guard_blocks_all_pairs_after_the_limit_of_stop_exits_within_the_lookback(
    reason: str,
) -> None:
    state = protections(stoploss_guard=GUARD)
    assert state.on_trade_closed("BTC/USDT", T0, reason) is None
    assert state.on_trade_closed("ETH/USDT", T0 + 3 * TF, reason) == "stoploss_guard"

    blocked_from = T0 + 3 * TF
    assert state.entry_block("SOL/USDT", blocked_from) == "protection"
    assert state.entry_block("BTC/USDT", blocked_from + 3 * TF - 1) == "protection"
    assert state.entry_block("BTC/USDT", blocked_from + 3 * TF) is None


def test_stoploss_guard_forgets_stop_exits_older_than_the_lookback() -> None:
    state = protections(stoploss_guard=GUARD)
    state.on_trade_closed("BTC/USDT", T0, "stop_loss")
    assert state.on_trade_closed("BTC/USDT", T0 + 4 * TF, "stop_loss") is None  # the first is 4 candles old
    assert state.entry_block("BTC/USDT", T0 + 4 * TF) is None


def test_stoploss_guard_ignores_exits_that_are_not_stop_losses() -> None:
    state = protections(stoploss_guard=GUARD)
    for i, reason in enumerate(["roi", "exit_signal", "force_exit", "stop_loss"]):
        assert state.on_trade_closed("BTC/USDT", T0 + i * TF // 2, reason) is None


def test_stoploss_guard_starts_counting_afresh_after_it_triggers() -> None:
    state = protections(stoploss_guard=GUARD)
    state.on_trade_closed("BTC/USDT", T0, "stop_loss")
    assert state.on_trade_closed("BTC/USDT", T0 + TF, "stop_loss") == "stoploss_guard"
    assert state.on_trade_closed("BTC/USDT", T0 + 2 * TF, "stop_loss") is None


def test_disabled_stoploss_guard_never_triggers() -> None:
    state = protections()
    for i in range(10):
        assert state.on_trade_closed("BTC/USDT", T0 + i, "stop_loss") is None
    assert state.entry_block("BTC/USDT", T0 + 10) is None


DRAWDOWN = MaxDrawdownSettings(enabled=True, max_drawdown=0.2, stop_candles=5)


def test_max_drawdown_trips_at_the_limit_measured_from_the_peak() -> None:
    state = protections(max_drawdown=DRAWDOWN)
    assert state.on_equity(T0, 1_000.0) is None
    assert state.on_equity(T0 + TF, 1_200.0) is None
    assert state.on_equity(T0 + 2 * TF, 961.0) is None  # 19.9 % below the 1 200 peak
    assert state.on_equity(T0 + 3 * TF, 950.0) == "max_drawdown"  # 20.8 %

    assert state.entry_block("BTC/USDT", T0 + 3 * TF + 5 * TF - 1) == "protection"
    assert state.entry_block("BTC/USDT", T0 + 8 * TF) is None


def test_max_drawdown_does_not_trip_again_while_entries_are_blocked() -> None:
    state = protections(max_drawdown=DRAWDOWN)
    state.on_equity(T0, 1_000.0)
    assert state.on_equity(T0 + TF, 790.0) == "max_drawdown"
    assert state.on_equity(T0 + 2 * TF, 500.0) is None
    assert state.blocked_until == T0 + TF + 5 * TF


def test_max_drawdown_measures_from_the_equity_at_the_trip_afterwards() -> None:
    state = protections(max_drawdown=DRAWDOWN)
    state.on_equity(T0, 1_000.0)
    assert state.on_equity(T0 + TF, 790.0) == "max_drawdown"  # the peak restarts at 790
    after = T0 + 6 * TF
    assert state.on_equity(after, 700.0) is None  # 11.4 % below 790, 30 % below the old peak
    assert state.on_equity(after + TF, 630.0) == "max_drawdown"  # 20.3 % below 790


def test_disabled_max_drawdown_never_trips() -> None:
    state = protections()
    state.on_equity(T0, 1_000.0)
    assert state.on_equity(T0 + TF, 1.0) is None
    assert state.entry_block("BTC/USDT", T0 + TF) is None
