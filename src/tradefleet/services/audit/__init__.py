"""The audit log as a service: who did what, when, with what outcome (:class:`AuditService`).

Compose it in the composition root over the trading database; the API records every state-changing
request itself once ``ApiServices.audit`` is set::

    services = ApiServices(auth=auth, ..., audit=SqlAuditLog(engine))

Other writers (CLI, gateways) append :class:`~tradefleet.adapters.storage.audit.AuditEntry` rows through the
same repository. Reading is for admins (``GET /api/v1/audit``).
"""

from tradefleet.adapters.storage.audit import AuditEntry, AuditFilter, AuditPage, AuditRecord, SqlAuditLog
from tradefleet.services.audit.service import AuditLog, AuditPageOut, AuditQueryError, AuditRecordOut, AuditService

__all__ = [
    "AuditEntry",
    "AuditFilter",
    "AuditLog",
    "AuditPage",
    "AuditPageOut",
    "AuditQueryError",
    "AuditRecord",
    "AuditRecordOut",
    "AuditService",
    "SqlAuditLog",
]
