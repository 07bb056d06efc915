"""Apache Fineract / Mifos X: the HTTP client of one partner (tenant), its typed payloads and
their parsing, and the error taxonomy."""

from .client import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    SERVED_FROM_CACHE_HEADER,
    TENANT_HEADER,
    FineractClient,
)
from .config import FineractClients, FineractConfig
from .errors import (
    RETRYABLE_STATUSES,
    FineractError,
    FineractFinalError,
    FineractPayloadError,
    FineractRetryableError,
    error_from_response,
)
from .models import (
    JAVA_DATE_FORMAT,
    LIST_FIELDS,
    LOCALE,
    BadLoanRecord,
    CommandResult,
    FilterMode,
    FineractBorrower,
    FineractLoan,
    LoanListing,
    LoanStatus,
    LoanStatusId,
    format_command_date,
    idempotency_key,
    parse_borrower,
    parse_command_result,
    parse_loan,
)

__all__ = [
    "API_PREFIX",
    "IDEMPOTENCY_HEADER",
    "JAVA_DATE_FORMAT",
    "LIST_FIELDS",
    "LOCALE",
    "RETRYABLE_STATUSES",
    "SERVED_FROM_CACHE_HEADER",
    "TENANT_HEADER",
    "BadLoanRecord",
    "CommandResult",
    "FilterMode",
    "FineractBorrower",
    "FineractClient",
    "FineractClients",
    "FineractConfig",
    "FineractError",
    "FineractFinalError",
    "FineractLoan",
    "FineractPayloadError",
    "FineractRetryableError",
    "LoanListing",
    "LoanStatus",
    "LoanStatusId",
    "error_from_response",
    "format_command_date",
    "idempotency_key",
    "parse_borrower",
    "parse_command_result",
    "parse_loan",
]
