"""Application services: transport-neutral functions that compose the engine with adapters."""
