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


class MarketDataUnavailable(TransientError):
    """A market-overview provider failed and no earlier answer is cached to serve instead."""

    code = "unavailable"
    http_status = 503

    @property
    def headers(self) -> dict[str, str]:
        # Overview data is cached for minutes; asking again within a minute rarely helps.
        return {"Retry-After": "60"}


class SeedingJobNotFound(DomainError):
    """No seeding job with that id (deleted, or never created)."""

    code = "seeding_job_not_found"
    http_status = 404


class ChartRangeInvalid(DomainError):
    """A chart range other than 1h, 4h, 1d, 1w, 1m."""

    code = "invalid_range"
    http_status = 400


class CandleSymbolUnknown(DomainError):
    """A klines/UDF query names a symbol (or source) with no candles: a bad parameter, so 400."""

    code = "unknown_symbol"
    http_status = 400


class CandleQueryInvalid(DomainError):
    """A klines/UDF query whose parameters contradict each other (e.g. startTime after endTime)."""

    code = "invalid"
    http_status = 400
