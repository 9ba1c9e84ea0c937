"""subgate_client: the service API of subgate, and FastAPI gates (subgate_client.fastapi)."""

from .client import Access, Quota, Subgate, Tier, Usage
from .errors import (Conflict, Forbidden, InvalidRequest, NotFound, NotInTier, QuotaExceeded,
                     SubgateError, Unauthorized, Unavailable)

__all__ = [
    "Access", "Quota", "Subgate", "Tier", "Usage",
    "Conflict", "Forbidden", "InvalidRequest", "NotFound", "NotInTier", "QuotaExceeded",
    "SubgateError", "Unauthorized", "Unavailable",
]
