"""Hyperopt: search a strategy's parameters with Optuna's TPE sampler, on every core, resumably.

Workers are separate processes (the GIL would serialise threads: Optuna's ``n_jobs`` runs threads) that
share one Optuna storage, so they see each other's epochs, and a later run, or a run on another machine,
continues the same study:

- default: a journal file ``<data_dir>/hyperopt/<study>.journal`` (Optuna's ``JournalFileBackend``, made
  for several processes on one machine);
- ``--storage sqlite:///file`` or ``--storage postgresql://...``: Optuna's ``RDBStorage``; with PostgreSQL,
  workers on several machines share a study. Give Optuna a database of its own: it keeps its own tables
  and Alembic version there.

Every epoch backtests with the fast kernel. A study remembers what it optimises (strategy, data, loss,
spaces) and refuses to continue with anything else, because epochs of another objective are not comparable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import queue as queue_module
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradefleet.core.candles import dates_ms, timeframe_to_ms
from tradefleet.core.errors import ConfigError, StorageError, StrategyError, TradeFleetError
from tradefleet.core.metrics import compute_metrics, market_change
from tradefleet.core.strategy import IStrategy
from tradefleet.engine.backtest.data import prepare_frames
from tradefleet.engine.backtest.fast import analyse, run_fast_on_signals
from tradefleet.engine.backtest.types import BacktestConfig
from tradefleet.services.hyperopt.losses import canonical_loss, evaluate, get_loss
from tradefleet.services.hyperopt.saved import (
    apply_saved_overrides,
    load_saved_overrides,
    load_saved_params,
    params_path,
    write_params,
)
from tradefleet.services.hyperopt.spaces import Candidate, SearchSpace, apply_overrides
from tradefleet.strategies.loader import load_strategy

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

CONTEXT_ATTR = "tradefleet_context"
METRICS_ATTR = "metrics"
ANALYSIS_CACHE = 8  # analysed frames kept per worker: epochs that only change ROI/stoploss reuse them
SUMMARY_KEYS = (
    "trades", "profit_abs", "profit_ratio", "max_drawdown_ratio", "sharpe", "sortino", "calmar", "win_rate",
    "profit_factor", "cagr",
)  # fmt: skip


@dataclass(frozen=True)
class HyperoptJob:
    """Everything a worker process needs; picklable, so it crosses to spawned processes."""

    strategy: str  # a built-in name, a class in search_dirs, or path.py[:Class]
    search_dirs: tuple[str, ...]
    spaces: tuple[str, ...]
    loss: str
    config: BacktestConfig
    candles: dict[str, pd.DataFrame]
    storage: str
    study_name: str
    min_trades: int = 1
    seed: int | None = None
    base_params: dict[str, Any] = field(default_factory=dict)
    base_overrides: dict[str, Any] = field(default_factory=dict)  # minimal_roi / stoploss / trailing

    def context(self) -> dict[str, Any]:
        """Return what makes two runs' epochs comparable (stored with the study)."""
        cfg = self.config
        return {
            "strategy": cfg.strategy,
            "pairs": list(cfg.pairs),
            "timeframe": cfg.timeframe,
            "start_ms": cfg.start_ms,
            "end_ms": cfg.end_ms,
            "loss": canonical_loss(self.loss),
            "spaces": list(self.spaces),
            "min_trades": self.min_trades,
            "risk": cfg.risk.model_dump(mode="json"),
            "starting_balance": cfg.starting_balance,
            "taker_fee": cfg.taker_fee,
        }


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, as workers report it to the parent."""

    worker: int
    number: int
    value: float | None
    state: str


@dataclass(frozen=True)
class HyperoptOutcome:
    """What a hyperopt run did and the best epoch of the whole study."""

    study_name: str
    storage: str
    epochs_run: int
    epochs_total: int
    jobs: int
    elapsed_s: float
    best_number: int
    best_value: float
    best: Candidate
    best_metrics: dict[str, Any]
    failed: int = 0

    @property
    def epochs_per_s(self) -> float:
        return self.epochs_run / self.elapsed_s if self.elapsed_s > 0 else 0.0


# ------------------------------------------------------------------------------------------- storage


def default_study_name(strategy: str, context: dict[str, Any]) -> str:
    """Return a readable study name that is the same for the same strategy, data, loss and spaces."""
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{strategy}-{context['timeframe']}-{context['loss']}-{digest}"


def default_storage(data_dir: Path, study_name: str) -> str:
    """Return the journal file that holds ``study_name`` under ``<data_dir>/hyperopt``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study_name)
    return str(Path(data_dir) / "hyperopt" / f"{safe}.journal")


def _is_url(spec: str) -> bool:
    return "://" in spec


def redact_storage(spec: str) -> str:
    """Return the storage for messages: URLs without their password."""
    if not _is_url(spec):
        return spec
    from tradefleet.adapters.storage.db import redact

    return redact(spec)


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """Open an Optuna storage: a database URL (RDBStorage) or a journal file path (``journal:`` optional)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if _is_url(spec):
        from sqlalchemy.engine import make_url

        from tradefleet.adapters.storage.db import normalize_url

        try:
            url = normalize_url(spec)
        except ConfigError as exc:
            raise ConfigError(
                f"--storage: {exc.message}", hint="use postgresql://user@host/db or sqlite:///file"
            ) from None
        if url.get_backend_name() == "sqlite" and url.database:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        rendered = make_url(url).render_as_string(hide_password=False)
        try:
            return RDBStorage(rendered, engine_kwargs={"pool_pre_ping": True})
        except Exception as exc:  # driver errors of every kind: say which storage and what to check
            raise StorageError(
                f"cannot open the hyperopt storage {redact_storage(spec)}: {' '.join(str(exc).split())[:300]}",
                hint="check the URL, that the server answers and that the database exists (give Optuna its own)",
            ) from None
    path = Path(spec.removeprefix("journal:")).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def close_storage(storage: Any) -> None:
    """Release a storage's database connections (RDBStorage); journal files need nothing."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        storage.remove_session()
        engine.dispose()


def make_sampler(seed: int | None, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Return the TPE sampler; ``constant_liar`` keeps parallel workers from sampling the same point."""
    import optuna

    with warnings.catch_warnings():  # multivariate/constant_liar were experimental before Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=None if seed is None else seed + worker,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=10,
        )


def prepare_study(job: HyperoptJob) -> int:
    """Create the study, or load it and check it optimises the same thing; return its finished epochs."""
    storage = open_storage(job.storage)
    try:
        return len(finished_trials(_create_or_check(job, storage)))
    finally:
        close_storage(storage)


def _create_or_check(job: HyperoptJob, storage: Any) -> optuna.Study:
    import optuna

    context = job.context()
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=job.study_name,
            direction="minimize",
            load_if_exists=True,
            sampler=make_sampler(job.seed),
        )
    except TradeFleetError:
        raise
    except Exception as exc:
        raise StorageError(
            f"cannot create or load study {job.study_name!r} in {redact_storage(job.storage)}: "
            f"{' '.join(str(exc).split())[:300]}",
            hint="check the storage; a journal file written by another program cannot be reused",
        ) from None
    stored = study.user_attrs.get(CONTEXT_ATTR)
    if stored is None:
        study.set_user_attr(CONTEXT_ATTR, context)
    elif stored != json.loads(json.dumps(context)):
        changed = sorted(k for k in set(stored) | set(context) if stored.get(k) != context.get(k))
        raise ConfigError(
            f"study {job.study_name!r} was run with other settings ({', '.join(changed)} differ)",
            hint="use the same settings to continue it, or pass another --study name",
        )
    return study


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))


# ------------------------------------------------------------------------------------------ objective


class Objective:
    """Backtest one candidate per call and return its loss; analysed frames are cached by parameter values."""

    def __init__(self, job: HyperoptJob) -> None:
        self.job = job
        self.cls = load_strategy(job.strategy, search_dirs=list(job.search_dirs))
        self.space = SearchSpace(self.cls, job.spaces, job.config.timeframe)
        self.loss = get_loss(job.loss)
        self.frames = prepare_frames(job.config, job.candles)
        self.tf_ms = timeframe_to_ms(job.config.timeframe)
        self.market = _market_change(self.frames, job.config.start_ms)
        self._cache: OrderedDict[str, dict[str, pd.DataFrame]] = OrderedDict()

    def strategy_for(self, candidate: Candidate) -> IStrategy:
        """Return the strategy the candidate runs: base parameters and overrides, then the candidate's."""
        strategy = self.cls({**self.job.base_params, **candidate.strategy_params()})
        base = self.job.base_overrides
        apply_overrides(strategy, base.get("minimal_roi"), base.get("stoploss"), base.get("trailing"))
        apply_overrides(strategy, candidate.minimal_roi, candidate.stoploss, candidate.trailing)
        return strategy

    def evaluate(self, candidate: Candidate) -> tuple[float, dict[str, Any]]:
        """Return (loss, headline metrics) of one candidate."""
        strategy = self.strategy_for(candidate)
        key = repr(sorted(strategy.param_values().items()))
        analysed = self._cache.get(key)
        if analysed is None:
            analysed = analyse(self.job.config, self.frames, strategy)
            self._cache[key] = analysed
            while len(self._cache) > ANALYSIS_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        result = run_fast_on_signals(self.job.config, self.frames, analysed, strategy)
        metrics = compute_metrics(
            result.trades,
            result.equity_ms,
            result.equity,
            self.job.config.starting_balance,
            self.tf_ms,
            self.market,
            pairs=self.job.config.pairs,
        )
        value = evaluate(self.loss, result, metrics, self.job.min_trades)
        summary = {k: v for k, v in metrics.to_dict().items() if k in SUMMARY_KEYS}
        return value, summary

    def __call__(self, trial: optuna.Trial) -> float:
        value, summary = self.evaluate(self.space.suggest(trial))
        trial.set_user_attr(METRICS_ATTR, summary)
        return value


def _market_change(frames: dict[str, pd.DataFrame], start_ms: int | None) -> float | None:
    closes = {}
    for pair, frame in frames.items():
        ms = dates_ms(frame["date"])
        mask = ms >= start_ms if start_ms is not None else np.ones(len(ms), dtype=bool)
        closes[pair] = frame["close"].to_numpy(dtype=np.float64)[mask]
    return market_change(closes)


# ------------------------------------------------------------------------------------------- workers


def _split(epochs: int, jobs: int) -> list[int]:
    base, extra = divmod(epochs, jobs)
    return [base + (1 if i < extra else 0) for i in range(jobs)]


def _optimize(job: HyperoptJob, worker: int, n_trials: int, report: Callable[[EpochReport], None]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = Objective(job)
    storage = open_storage(job.storage)
    study = optuna.load_study(study_name=job.study_name, storage=storage, sampler=make_sampler(job.seed, worker))

    def callback(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        report(EpochReport(worker, trial.number, trial.value, trial.state.name))

    with warnings.catch_warnings():
        # A strategy that fails on some parameters marks that epoch failed; Optuna says so as a warning.
        warnings.simplefilter("ignore", UserWarning)
        try:
            study.optimize(objective, n_trials=n_trials, callbacks=[callback], catch=(StrategyError,))
        finally:
            close_storage(storage)


def _worker_main(job: HyperoptJob, worker: int, n_trials: int, messages: Any) -> None:
    """Entry point of a worker process: optimise, reporting each epoch and, at the end, success or the error."""
    try:
        _optimize(job, worker, n_trials, messages.put)
    except TradeFleetError as exc:
        messages.put(("error", worker, exc.one_line()))
    except BaseException as exc:  # report anything, the parent decides; the traceback goes to the worker's log
        log.exception("hyperopt worker %d failed", worker)
        messages.put(("error", worker, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))
    else:
        messages.put(("done", worker, ""))


def default_jobs() -> int:
    """Return how many worker processes use every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_hyperopt(
    job: HyperoptJob,
    epochs: int,
    *,
    jobs: int | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> HyperoptOutcome:
    """Run ``epochs`` more epochs of the study over ``jobs`` worker processes and return the best epoch.

    With one job the epochs run in this process. Epochs add up across runs of the same study.
    """
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    jobs = min(jobs, epochs)
    Objective(job).evaluate(Candidate())  # a broken strategy or setting fails here, before any worker starts
    before = prepare_study(job)
    started = time.perf_counter()
    report = on_epoch or (lambda _r: None)
    if jobs == 1:
        _optimize(job, 0, epochs, report)
    else:
        _run_processes(job, _split(epochs, jobs), report)
    elapsed = time.perf_counter() - started
    storage = open_storage(job.storage)
    try:
        return _outcome(job, storage, before, jobs, elapsed)
    finally:
        close_storage(storage)


def start_method() -> str:
    """Return how to start workers: fork (instant, modules and candles inherited) when it is safe, else spawn.

    Forking is safe here only while this process runs a single thread (a lock held by another thread would
    stay locked forever in the child) and holds no database connection (every storage is closed before the
    workers start). Spawn re-imports everything in a fresh interpreter: about two seconds per start.
    """
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _run_processes(job: HyperoptJob, shares: list[int], report: Callable[[EpochReport], None]) -> None:
    context: Any = mp.get_context(start_method())
    messages = context.Queue()
    workers = [
        context.Process(target=_worker_main, args=(job, i, n, messages), name=f"hyperopt-{i}", daemon=True)
        for i, n in enumerate(shares)
    ]
    for process in workers:
        process.start()
    running, errors = len(workers), []
    try:
        while running:
            try:
                message = messages.get(timeout=1.0)
            except queue_module.Empty:
                dead = [p for p in workers if not p.is_alive() and p.exitcode not in (0, None)]
                if dead and messages.empty():
                    errors.append(f"worker {dead[0].name} died with exit code {dead[0].exitcode}")
                    break
                continue
            if isinstance(message, EpochReport):
                report(message)
            else:
                kind, _worker, text = message
                running -= 1
                if kind == "error":
                    errors.append(text)
                    break
    finally:
        for process in workers:
            if errors and process.is_alive():
                process.terminate()
            process.join(timeout=30)
        messages.close()
        messages.join_thread()
    if errors:
        raise TradeFleetError(
            f"hyperopt failed: {errors[0]}", hint="fix the cause; finished epochs are kept in the study"
        )


def _outcome(job: HyperoptJob, storage: Any, before: int, jobs: int, elapsed: float) -> HyperoptOutcome:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=job.study_name, storage=storage)
    finished = finished_trials(study)
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        raise StrategyError(
            f"no epoch of study {job.study_name!r} finished: every backtest failed",
            hint="run `tradefleet backtest` with the strategy to see the error",
        )
    best = min(complete, key=lambda t: (t.value, t.number))
    cls = load_strategy(job.strategy, search_dirs=list(job.search_dirs))
    space = SearchSpace(cls, job.spaces, job.config.timeframe)
    return HyperoptOutcome(
        study_name=job.study_name,
        storage=redact_storage(job.storage),
        epochs_run=len(finished) - before,
        epochs_total=len(finished),
        jobs=jobs,
        elapsed_s=elapsed,
        best_number=best.number,
        best_value=float(best.value or 0.0),
        best=space.candidate_from(best.params),
        best_metrics=dict(best.user_attrs.get(METRICS_ATTR, {})),
        failed=sum(1 for t in finished if t.state == TrialState.FAIL),
    )


__all__: Sequence[str] = (
    "EpochReport",
    "HyperoptJob",
    "HyperoptOutcome",
    "Objective",
    "apply_saved_overrides",
    "default_jobs",
    "default_storage",
    "default_study_name",
    "load_saved_overrides",
    "load_saved_params",
    "open_storage",
    "params_path",
    "run_hyperopt",
    "write_params",
)
