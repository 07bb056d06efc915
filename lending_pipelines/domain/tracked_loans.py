"""A loan as a partner's core-banking system (Fineract) reports it: the plain value polling
tracks and `db/loans` stores. Parsed from the wire by `partners/fineract/models.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(slots=True)
class LoanStatus:
    id: int
    code: str
    value: str


@dataclass(slots=True)
class FineractLoan:
    tenant: str
    id: int
    account_no: str
    status: LoanStatus
    currency: str
    principal: Decimal
    external_id: str | None = None
    client_id: int | None = None
    client_name: str | None = None
    product_id: int | None = None
    product_name: str | None = None
    approved_principal: Decimal | None = None
    net_disbursal_amount: Decimal | None = None
    submitted_on: date | None = None
    approved_on: date | None = None
    expected_disbursement_on: date | None = None
    actual_disbursement_on: date | None = None
    total_outstanding: Decimal | None = None

    @property
    def disbursal_amount(self) -> Decimal:
        """What the borrower receives: net of up-front charges when Fineract computed it."""
        if self.net_disbursal_amount is not None:
            return self.net_disbursal_amount
        return self.approved_principal if self.approved_principal is not None else self.principal
