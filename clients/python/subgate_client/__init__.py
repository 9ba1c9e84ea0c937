"""subgate_client: the service API of subgate, a user's billing (UserClient: subscription,
checkout, plan changes), and FastAPI gates (subgate_client.fastapi)."""

from .client import (Access, PendingChange, PlanChange, PlanPreview, Quota, Subgate,
                     Subscription, Tier, Usage, UserClient)
from .errors import (Conflict, Forbidden, InvalidRequest, NotFound, NotInTier, PaymentPending,
                     QuotaExceeded, SubgateError, Unauthorized, Unavailable)
from .webhook import WebhookSignatureError, verify_webhook

__all__ = [
    "Access", "PendingChange", "PlanChange", "PlanPreview", "Quota", "Subgate", "Subscription",
    "Tier", "Usage", "UserClient",
    "Conflict", "Forbidden", "InvalidRequest", "NotFound", "NotInTier", "PaymentPending",
    "QuotaExceeded", "SubgateError", "Unauthorized", "Unavailable",
    "WebhookSignatureError", "verify_webhook",
]
