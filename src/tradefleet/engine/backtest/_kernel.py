"""The compiled loop of the fast backtest: the bot runtime's rules over plain arrays, with its float operations.

Every step mirrors a line of :mod:`tradefleet.engine.bot`, :mod:`tradefleet.engine.orders`, the simulated
venue and :class:`tradefleet.core.trades.Portfolio` — same order, same arithmetic — so both engines give
bit-identical trades. Each helper names the code it mirrors; change them together.

Untyped for mypy (numba); :mod:`tradefleet.engine.backtest.fast` calls it through a typed wrapper.
"""
# mypy: ignore-errors
# Long argument lists stay packed (ruff format off): one screen per rule.
# fmt: off

from __future__ import annotations

import numba
import numpy as np

# exit reasons (codes of the trade arrays)
OPEN, ROI, EXIT_SIGNAL, STOP_LOSS, TRAILING = 0, 1, 2, 3, 4

TWO_53 = 9007199254740992.0


@numba.njit(cache=True, inline="always")
def round_decimals(y, p10):
    """``round(y, d)`` with ``p10 = 10.0**d`` (exact for values on a coarser grid than ``10**-d``)."""
    if abs(y) * p10 >= TWO_53:
        return y  # the decimal grid is finer than the float: Python's round gives y back
    return np.rint(y * p10) / p10


@numba.njit(cache=True, inline="always")
def floor_to_step(value, step, p10):
    """Mirror of :func:`tradefleet.core.precision.floor_to_step`."""
    if step <= 0:
        return value
    ratio = value / step
    nearest = np.rint(ratio)
    tolerance = max(1e-6, abs(ratio) * 1e-14)
    units = nearest if abs(ratio - nearest) < tolerance else np.floor(ratio)
    return round_decimals(units * step, p10)


@numba.njit(cache=True, inline="always")
def round_to_tick(value, tick, p10):
    """Mirror of :func:`tradefleet.core.precision.round_to_tick`."""
    if tick <= 0:
        return value
    return round_decimals(np.rint(value / tick) * tick, p10)


@numba.njit(cache=True)
def _equity(cash, pos_amount, pos_order, n_pos, marks):
    """Mirror of ``Portfolio.equity``: cash plus positions in the order they were first bought."""
    total = 0.0
    for k in range(n_pos):
        p = pos_order[k]
        total += pos_amount[p] * marks[p]
    return cash + total


@numba.njit(cache=True)
def run_kernel(
    tl_pair, tl_row, offsets, open_ms, op, hi, lo, cl, enter, exit_sig,
    tf_ms, slip, taker, tick, tick_p10, step, step_p10, min_notional, min_amount, cost_factor,
    stake_fixed, stake_amount, starting_balance, max_open, max_per_pair, stoploss,
    trailing, has_positive, positive, offset, only_offset, roi_minutes, roi_ratio,
    cooldown, guard_on, guard_lookback, guard_limit, guard_stop, dd_on, dd_max, dd_stop, snapshot_ms,
):
    n_pairs = offsets.shape[0] - 1
    n_steps = tl_pair.shape[0]
    # A trade needs an entry signal: their count bounds the trade arrays (n_steps would zero-fill ~150 MB).
    cap = 1
    for k in range(enter.shape[0]):
        if enter[k] != 0:
            cap += 1
    # trades (index = entry order, as the store's ids)
    t_pair = np.zeros(cap, np.int64)
    t_row = np.zeros(cap, np.int64)
    t_open_ms = np.zeros(cap, np.int64)
    t_close_ms = np.zeros(cap, np.int64)
    t_open_rate = np.zeros(cap)
    t_close_rate = np.zeros(cap)
    t_amount = np.zeros(cap)
    t_fee_open = np.zeros(cap)
    t_fee_close = np.zeros(cap)
    t_reason = np.zeros(cap, np.int8)
    t_max = np.zeros(cap)
    t_stop = np.zeros(cap)  # the bot's stop price (unrounded)
    t_stop_r = np.zeros(cap)  # the resting order's stop (rounded to the tick by the venue)
    t_stop_live = np.zeros(cap, np.bool_)
    t_stop_kind = np.zeros(cap, np.int8)
    t_stop_ts = np.zeros(cap, np.int64)
    t_stop_seq = np.zeros(cap, np.int64)
    t_fill_px = np.zeros(cap)  # the venue's fill price of the exit (before averaging)
    n_trades = 0
    seq = 0
    # per pair
    plist = np.zeros((n_pairs, max_per_pair), np.int64)
    pcount = np.zeros(n_pairs, np.int64)
    marks = np.zeros(n_pairs)
    pos_amount = np.zeros(n_pairs)
    pos_seen = np.zeros(n_pairs, np.bool_)
    pos_order = np.zeros(n_pairs, np.int64)
    n_pos = 0
    last_exit = np.zeros(n_pairs, np.int64)
    has_exit = np.zeros(n_pairs, np.bool_)
    # account
    cash = starting_balance  # Portfolio.cash
    vcash = starting_balance  # the venue's free quote balance (fills at the raw price, not the average)
    n_open = 0
    sl_exits = np.zeros(cap, np.int64)
    n_sl = 0
    blocked_until = 0
    peak = 0.0
    next_snap = 0
    eq_ms = np.zeros(n_steps, np.int64)
    eq_val = np.zeros(n_steps)
    n_eq = 0
    hits = np.zeros(max_per_pair, np.int64)
    todo = np.zeros(max_per_pair, np.int64)

    for k in range(n_steps):
        p = tl_pair[k]
        base = offsets[p]
        i = tl_row[k]
        r = base + i
        o_ms = open_ms[r]
        c_ms = o_ms + tf_ms
        close = cl[r]
        # the venue's price after the candle: the next open, or the close at the end of the data
        mark_v = op[r + 1] if r + 1 < offsets[p + 1] else close

        # 1. venue: resting stops of this pair placed at or before this open, matched in placement order
        n_hit = 0
        for j in range(pcount[p]):
            t = plist[p, j]
            if t_stop_live[t] and t_stop_ts[t] <= o_ms and lo[r] <= t_stop_r[t]:
                hits[n_hit] = t
                n_hit += 1
        for a in range(1, n_hit):  # insertion sort by placement sequence
            x = hits[a]
            b = a - 1
            while b >= 0 and t_stop_seq[hits[b]] > t_stop_seq[x]:
                hits[b + 1] = hits[b]
                b -= 1
            hits[b + 1] = x
        marks[p] = close
        closed_here = False
        for a in range(n_hit):
            t = hits[a]
            t_stop_live[t] = False
            _fill_exit(t, min(op[r], t_stop_r[t]) * (1 - slip), t_amount[t], taker, c_ms, t_stop_kind[t], t_amount,
                       t_close_ms, t_close_rate, t_fee_close, t_reason, t_fill_px)
            cash, vcash, blocked_until, n_sl = _apply_close(
                t, p, c_ms, cash, vcash, t_amount, t_close_rate, t_fee_close, t_reason, t_fill_px, pos_amount,
                last_exit, has_exit, sl_exits, n_sl, blocked_until, guard_on, guard_lookback, guard_limit,
                guard_stop, tf_ms,
            )
            n_open -= 1
            _remove(plist, pcount, p, t)
            closed_here = True

        # 2. bot: manage each open trade of the pair (in entry order)
        n_todo = pcount[p]
        for j in range(n_todo):
            todo[j] = plist[p, j]
        for j in range(n_todo):
            t = todo[j]
            closed = False
            if hi[r] > t_max[t]:
                t_max[t] = hi[r]
                if trailing:
                    new_stop = _trailing(t_stop[t], t_open_rate[t], t_max[t], stoploss, has_positive, positive,
                                         offset, only_offset)
                    if new_stop > t_stop[t] + tick:
                        t_stop_live[t] = False  # cancel the old stop
                        t_stop[t] = new_stop
                        closed = _place_stop(t, TRAILING, c_ms, mark_v, t_amount, t_stop, t_stop_r, t_stop_live,
                                             t_stop_kind, t_stop_ts, t_stop_seq, seq, tick, tick_p10, step,
                                             step_p10, min_notional, min_amount, slip, taker,
                                             t_close_ms, t_close_rate, t_fee_close, t_reason, t_fill_px)
                        seq += 1
            if not closed:
                minutes = (c_ms - t_open_ms[t]) / 60_000
                reason = OPEN
                threshold = 0.0
                found = False
                for q in range(roi_minutes.shape[0]):
                    if minutes >= roi_minutes[q]:
                        threshold = roi_ratio[q]
                        found = True
                    else:
                        break
                if found and close / t_open_rate[t] - 1.0 >= threshold:
                    reason = ROI
                elif exit_sig[r]:
                    reason = EXIT_SIGNAL
                if reason != OPEN:
                    t_stop_live[t] = False  # cancel the stop, then sell at market
                    amount = floor_to_step(t_amount[t], step, step_p10)
                    if amount <= 0 or amount < min_amount or amount * mark_v < min_notional:
                        # exit refused by the venue: protect the position again (bot._on_order_update)
                        closed = _place_stop(t, STOP_LOSS, c_ms, mark_v, t_amount, t_stop, t_stop_r, t_stop_live,
                                             t_stop_kind, t_stop_ts, t_stop_seq, seq, tick, tick_p10, step,
                                             step_p10, min_notional, min_amount, slip, taker,
                                             t_close_ms, t_close_rate, t_fee_close, t_reason, t_fill_px)
                        seq += 1
                    else:
                        _fill_exit(t, mark_v * (1 - slip), amount, taker, c_ms, reason, t_amount, t_close_ms,
                                   t_close_rate, t_fee_close, t_reason, t_fill_px)
                        closed = True
            if closed:
                cash, vcash, blocked_until, n_sl = _apply_close(
                    t, p, c_ms, cash, vcash, t_amount, t_close_rate, t_fee_close, t_reason, t_fill_px, pos_amount,
                    last_exit, has_exit, sl_exits, n_sl, blocked_until, guard_on, guard_lookback, guard_limit,
                    guard_stop, tf_ms,
                )
                n_open -= 1
                _remove(plist, pcount, p, t)
                closed_here = True

        # 3. bot: entry through the risk gate
        if enter[r] and not closed_here:
            blocked = (
                n_open >= max_open
                or pcount[p] >= max_per_pair
                or c_ms < blocked_until
                or (cooldown > 0 and has_exit[p] and c_ms < last_exit[p] + cooldown * tf_ms)
            )
            if not blocked:
                equity = _equity(cash, pos_amount, pos_order, n_pos, marks)
                stake = stake_amount if stake_fixed else equity * stake_amount / 100.0
                stake = max(0.0, min(stake, cash / cost_factor))
                amount = floor_to_step(stake / close, step, step_p10)
                if not (stake <= 0 or amount * close < min_notional or amount < min_amount):
                    amount = floor_to_step(amount, step, step_p10)
                    if not (amount <= 0 or amount < min_amount or amount * mark_v < min_notional):
                        price = mark_v * (1 + slip)
                        notional = amount * price
                        fee = notional * taker
                        new_free = vcash + -(notional + fee)
                        if not new_free < -1e-9 * max(1.0, abs(vcash)):
                            vcash = max(new_free, 0.0)
                            t = n_trades
                            n_trades += 1
                            avg = (0.0 * 0.0 + price * amount) / (0.0 + amount)
                            t_pair[t] = p
                            t_row[t] = i
                            t_open_ms[t] = c_ms
                            t_open_rate[t] = avg
                            t_amount[t] = 0.0 + amount
                            t_fee_open[t] = 0.0 + fee
                            t_max[t] = avg
                            t_stop[t] = avg * (1.0 + stoploss)
                            t_reason[t] = OPEN
                            cash = max(cash - (amount * avg + fee), 0.0)
                            if not pos_seen[p]:
                                pos_seen[p] = True
                                pos_order[n_pos] = p
                                n_pos += 1
                            pos_amount[p] += amount
                            plist[p, pcount[p]] = t
                            pcount[p] += 1
                            n_open += 1
                            closed = _place_stop(t, STOP_LOSS, c_ms, mark_v, t_amount, t_stop, t_stop_r, t_stop_live,
                                                 t_stop_kind, t_stop_ts, t_stop_seq, seq, tick, tick_p10, step,
                                                 step_p10, min_notional, min_amount, slip, taker,
                                             t_close_ms, t_close_rate, t_fee_close, t_reason, t_fill_px)
                            seq += 1
                            if closed:  # the stop crossed on arrival (not with a stop below the fill)
                                cash, vcash, blocked_until, n_sl = _apply_close(
                                    t, p, c_ms, cash, vcash, t_amount, t_close_rate, t_fee_close, t_reason,
                                    t_fill_px, pos_amount, last_exit, has_exit, sl_exits, n_sl, blocked_until,
                                    guard_on, guard_lookback, guard_limit, guard_stop, tf_ms,
                                )
                                n_open -= 1
                                _remove(plist, pcount, p, t)

        # 4. hourly equity snapshot (max-drawdown protection)
        if c_ms >= next_snap:
            equity = _equity(cash, pos_amount, pos_order, n_pos, marks)
            peak = max(peak, equity)
            drawdown = 1.0 - equity / peak if peak > 0 else 0.0
            if dd_on and c_ms >= blocked_until and drawdown >= dd_max - 1e-12:
                blocked_until = c_ms + dd_stop * tf_ms
                peak = equity
            next_snap = (c_ms // snapshot_ms + 1) * snapshot_ms

        # equity curve: one point per close time, after every pair closing then
        if k + 1 == n_steps or open_ms[offsets[tl_pair[k + 1]] + tl_row[k + 1]] != o_ms:
            eq_ms[n_eq] = c_ms
            eq_val[n_eq] = _equity(cash, pos_amount, pos_order, n_pos, marks)
            n_eq += 1

    return (
        n_trades, t_pair, t_row, t_open_ms, t_close_ms, t_open_rate, t_close_rate, t_amount, t_fee_open,
        t_fee_close, t_reason, n_eq, eq_ms, eq_val,
    )


@numba.njit(cache=True)
def _trailing(current, open_rate, max_rate, stoploss, has_positive, positive, offset, only_offset):
    """Mirror of :func:`tradefleet.core.risk.trailing_stop`."""
    profit = max_rate / open_rate - 1.0
    if only_offset and profit < offset:
        return current
    distance = stoploss
    if has_positive and profit > offset:
        distance = -positive
    return max(current, max_rate * (1.0 + distance))


@numba.njit(cache=True)
def _place_stop(t, kind, c_ms, mark_v, t_amount, t_stop, t_stop_r, t_stop_live, t_stop_kind, t_stop_ts,
                t_stop_seq, seq, tick, tick_p10, step, step_p10, min_notional, min_amount, slip, taker,
                t_close_ms, t_close_rate, t_fee_close, t_reason, t_fill_px):
    """Mirror of ``bot._place_stop`` + ``SimulatedVenue.place``; return True when it filled on arrival."""
    amount = floor_to_step(t_amount[t], step, step_p10)
    stop = round_to_tick(t_stop[t], tick, tick_p10)
    if amount <= 0 or amount < min_amount or stop == 0 or amount * stop < min_notional:
        return False  # refused by the venue: the trade stays without a resting stop
    t_stop_r[t] = stop
    t_stop_kind[t] = kind
    if mark_v <= stop:  # a sell stop at or above the price executes at once, at the price
        _fill_exit(t, mark_v * (1 - slip), amount, taker, c_ms, kind, t_amount, t_close_ms, t_close_rate,
                   t_fee_close, t_reason, t_fill_px)
        return True
    t_stop_live[t] = True
    t_stop_ts[t] = c_ms
    t_stop_seq[t] = seq
    return False


@numba.njit(cache=True)
def _fill_exit(t, price, amount, taker, c_ms, reason, t_amount, t_close_ms, t_close_rate, t_fee_close, t_reason,
               t_fill_px):
    """Mirror of the venue's ``_fill`` of a sell and ``Order.apply_fill`` + ``bot._close_trade``."""
    t_fill_px[t] = price
    notional = amount * price
    fee = notional * taker
    t_close_ms[t] = c_ms
    t_close_rate[t] = (0.0 * 0.0 + price * amount) / (0.0 + amount)
    t_fee_close[t] = 0.0 + fee
    t_reason[t] = reason
    t_amount[t] = min(amount, t_amount[t])


@numba.njit(cache=True)
def _remove(plist, pcount, p, t):
    n = pcount[p]
    j = 0
    while j < n and plist[p, j] != t:
        j += 1
    while j + 1 < n:
        plist[p, j] = plist[p, j + 1]
        j += 1
    pcount[p] = n - 1


@numba.njit(cache=True)
def _on_closed(p, c_ms, reason, last_exit, has_exit, sl_exits, n_sl, blocked_until,
               guard_on, guard_lookback, guard_limit, guard_stop, tf_ms):
    """Mirror of ``ProtectionState.on_trade_closed``; return (blocked_until, stoploss exits kept)."""
    last_exit[p] = max(last_exit[p] if has_exit[p] else 0, c_ms)
    has_exit[p] = True
    if guard_on and reason in (STOP_LOSS, TRAILING):
        sl_exits[n_sl] = c_ms
        n_sl += 1
        horizon = c_ms - guard_lookback * tf_ms
        kept = 0
        for q in range(n_sl):
            if sl_exits[q] > horizon:
                sl_exits[kept] = sl_exits[q]
                kept += 1
        n_sl = kept
        if n_sl >= guard_limit:
            blocked_until = max(blocked_until, c_ms + guard_stop * tf_ms)
            n_sl = 0
    return blocked_until, n_sl


@numba.njit(cache=True)
def _apply_close(t, p, c_ms, cash, vcash, t_amount, t_close_rate, t_fee_close, t_reason, t_fill_px, pos_amount,
                 last_exit, has_exit, sl_exits, n_sl, blocked_until, guard_on, guard_lookback, guard_limit,
                 guard_stop, tf_ms):
    """Apply a filled exit to the venue balance, the portfolio and the protections."""
    amount = t_amount[t]
    fee = t_fee_close[t]
    vcash = max(vcash + (amount * t_fill_px[t] - fee), 0.0)  # SimulatedVenue._move of the quote
    cash = cash + (amount * t_close_rate[t] - fee)  # Portfolio.apply_fill("sell") at the order's average
    sold = min(amount, pos_amount[p])
    pos_amount[p] -= sold
    if pos_amount[p] <= 1e-9:
        pos_amount[p] = 0.0
    blocked_until, n_sl = _on_closed(p, c_ms, t_reason[t], last_exit, has_exit, sl_exits, n_sl, blocked_until,
                                     guard_on, guard_lookback, guard_limit, guard_stop, tf_ms)
    return cash, vcash, blocked_until, n_sl
