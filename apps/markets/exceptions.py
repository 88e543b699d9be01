from haunt.errors import DomainError, TransientError


class PriceUnavailable(TransientError):
    code = "price_unavailable"
    http_status = 503


class UnknownSymbol(DomainError):
    code = "unknown_symbol"
    http_status = 404


class SourceUnavailable(TransientError):
    """A price source did not answer usefully (network, timeout, HTTP error, unreadable body)."""

    code = "source_unavailable"
    http_status = 503


class SourceNotConfigured(DomainError):
    """A price source cannot be polled as configured (no API key, no symbols mapped)."""

    code = "source_not_configured"
    http_status = 503
