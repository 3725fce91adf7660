"""The management API: FastAPI app factory, dependencies, error shape, request context, health, metrics.

Build it in the composition root (``bootstrap.build_api``) and serve it with uvicorn::

    app = create_app(ApiServices(auth=auth, store=store, health_checks=checks))
"""

from tradefleet.api.app import create_app
from tradefleet.api.deps import ApiServices
from tradefleet.api.health import CallableCheck, DatabaseCheck, HealthStatus, StaticCheck
from tradefleet.api.metrics import ApiMetrics

__all__ = ["ApiMetrics", "ApiServices", "CallableCheck", "DatabaseCheck", "HealthStatus", "StaticCheck", "create_app"]
