"""Prometheus gauges of the platform read at scrape time: bots by status, gateways alive, orders by status,
and events waiting in the outbox to be published on the bus (the bus lag as the database sees it; event
times are market times, so a count, not an age).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from tradefleet.adapters.storage import tables as t
from tradefleet.adapters.storage.platform_tables import bot_leases, gateways
from tradefleet.core.candles import timeframe_to_ms
from tradefleet.core.ports import TradingStore


class PlatformCollector(Collector):
    """Counts from the trading database, one query per family, at each scrape."""

    def __init__(self, engine: Engine, alive_within_ms: int = 15_000) -> None:
        self.engine = engine
        self.alive_within_ms = alive_within_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time_ns() // 1_000_000
        bots = GaugeMetricFamily("tradefleet_bots", "Bots by wanted status.", labels=["status"])
        running = GaugeMetricFamily("tradefleet_bots_hosted", "Bots a live gateway holds by lease.")
        alive = GaugeMetricFamily("tradefleet_gateways_alive", "Gateways that sent a heartbeat recently.")
        orders = GaugeMetricFamily("tradefleet_orders", "Orders by status.", labels=["status"])
        backlog = GaugeMetricFamily("tradefleet_outbox_pending", "Events not yet published on the bus.")
        try:
            with self.engine.connect() as conn:
                for status, n in conn.execute(select(t.bots.c.status, func.count()).group_by(t.bots.c.status)):
                    bots.add_metric([str(status)], n)
                running.add_metric(
                    [], conn.execute(select(func.count()).where(bot_leases.c.expires_ms > now)).scalar() or 0
                )
                beat = gateways.c.heartbeat_ms > now - self.alive_within_ms
                alive.add_metric([], conn.execute(select(func.count()).where(beat)).scalar() or 0)
                for status, n in conn.execute(select(t.orders.c.status, func.count()).group_by(t.orders.c.status)):
                    orders.add_metric([str(status)], n)
                pending = t.events_outbox.c.published.is_(False)
                count = conn.execute(select(func.count()).where(pending)).scalar()
        except SQLAlchemyError:
            return  # /health reports the database; a scrape must not fail over it
        backlog.add_metric([], count or 0)
        yield from (bots, running, alive, orders, backlog)


RUNNING_STATUSES = ("running", "stopentry")


def live_exchange_health(store: TradingStore, now_ms: int, *, grace_ms: int = 60_000) -> tuple[bool, str] | None:
    """Judge the venues of running live bots by their candles (None: no live bot, nothing to judge).

    A gateway feeds a live bot each candle soon after it closes; a bot more than three candles (plus
    ``grace_ms``) behind means its venue does not answer, or no gateway runs the bot. ``/health`` answers
    anyone, so the detail counts bots per venue and names none.
    """
    live = [b for b in store.list_bots() if b.mode == "live" and store.get_bot_status(b.bot_id) in RUNNING_STATUSES]
    if not live:
        return None
    stale: dict[str, int] = {}  # venue -> live bots without recent candles; /health names no bot to anyone
    for bot in live:
        tf_ms = timeframe_to_ms(bot.timeframe)
        last = max(store.load_progress(bot.bot_id).values(), default=None)
        if last is None or now_ms - (last + tf_ms) > 3 * tf_ms + grace_ms:
            stale[bot.exchange] = stale.get(bot.exchange, 0) + 1
    if stale:
        counts = ", ".join(f"{n} of {sum(b.exchange == v for b in live)} on {v}" for v, n in sorted(stale.items()))
        return False, f"live bots without recent candles: {counts}"
    venues = ", ".join(sorted({b.exchange for b in live}))
    return True, f"{len(live)} live bot(s) on {venues}, candles up to date"
