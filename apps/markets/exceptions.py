from haunt.errors import DomainError, TransientError


class PriceUnavailable(TransientError):
    code = "price_unavailable"
    http_status = 503


class UnknownSymbol(DomainError):
    code = "unknown_symbol"
    http_status = 404
