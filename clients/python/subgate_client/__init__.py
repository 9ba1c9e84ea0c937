"""subgate_client: the service API of subgate, a user's billing (UserClient: subscription,
checkout, plan changes), entitlement tokens verified locally (verify_entitlement_token), and
FastAPI gates (subgate_client.fastapi)."""

from .client import (Access, PendingChange, PlanChange, PlanPreview, Quota, Subgate,
                     Subscription, Tier, Usage, UserClient)
from .errors import (Conflict, Forbidden, InvalidRequest, NotFound, NotInTier, PaymentPending,
                     QuotaExceeded, SubgateError, Unauthorized, Unavailable)
from .tokens import EntitlementTokenError, verify_entitlement_token
from .webhook import WebhookSignatureError, verify_webhook

__all__ = [
    "Access", "PendingChange", "PlanChange", "PlanPreview", "Quota", "Subgate", "Subscription",
    "Tier", "Usage", "UserClient",
    "Conflict", "Forbidden", "InvalidRequest", "NotFound", "NotInTier", "PaymentPending",
    "QuotaExceeded", "SubgateError", "Unauthorized", "Unavailable",
    "EntitlementTokenError", "verify_entitlement_token",
    "WebhookSignatureError", "verify_webhook",
]
