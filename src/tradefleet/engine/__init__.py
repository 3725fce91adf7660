"""Bot runtime: one loop for paper, live and event-driven backtests, driven by a clock."""
