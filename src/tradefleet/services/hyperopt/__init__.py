"""Hyperopt: search strategy parameters, ROI table, stoploss and trailing stop with Optuna."""
