"""The one exception hierarchy of the core. :mod:`aigw.web` maps it to HTTP in one place."""

from __future__ import annotations


class GatewayError(Exception):
    """A failure the caller should see, with a stable machine-readable ``code``."""

    status: int = 500
    error_type: str = "api_error"
    title: str = "Internal error"
    default_code: str = "internal_error"
    # The RFC 9457 ``type`` when it is not the gateway's own (``urn:aigw:problem:<code>``).
    problem_type: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"
    title = "Invalid request"
    default_code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    title = "Payload too large"
    default_code = "payload_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"
    title = "Authentication failed"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"
    title = "Forbidden"
    default_code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"
    title = "Not found"
    default_code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request_error"
    title = "Method not allowed"
    default_code = "method_not_allowed"


class Conflict(GatewayError):
    status = 409
    error_type = "conflict_error"
    title = "Conflict"
    default_code = "conflict"


class Gone(GatewayError):
    status = 410
    error_type = "gone_error"
    title = "Gone"
    default_code = "gone"


class PaymentRequired(GatewayError):
    status = 402
    error_type = "billing_error"
    title = "Payment required"
    default_code = "payment_required"
    # Micro-USD of credits still missing for the refused call, when known (machine payments
    # offer a top-up only if one credit pack covers it).
    needs_micro_usd: int | None = None


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    title = "Too many requests"
    default_code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    status = 502
    error_type = "upstream_error"
    title = "Bad gateway"
    default_code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    title = "Gateway timeout"
    default_code = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    error_type = "api_error"
    title = "Service unavailable"
    default_code = "service_unavailable"
