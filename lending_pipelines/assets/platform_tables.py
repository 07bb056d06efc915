"""The keys of the platform tables the workflows read but no asset writes (partners, creators,
escrows, the retailer credit tables and the collections loan book come from the platform's own
services). The analytics package declares one external AssetSpec per source table under the
same keys (`assets/analytics/manifest.py::platform_table_specs`), so a workflow asset's `deps`
and the dbt models meet at one node per table."""

import dagster as dg

PLATFORM_SCHEMA = "lending"
PARTNERS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "partners"])
CREATORS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "creators"])
ESCROWS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "escrows"])
RETAILERS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "retailers"])
CREDIT_ACCOUNTS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "credit_accounts"])
ORDERS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "orders"])
CREDIT_TRANSACTIONS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "credit_transactions"])
COLLECTION_LOANS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "collection_loans"])
INSTALLMENTS_TABLE = dg.AssetKey([PLATFORM_SCHEMA, "installments"])
PLATFORM_TABLE_KEYS = {
    "partners": PARTNERS_TABLE,
    "creators": CREATORS_TABLE,
    "escrows": ESCROWS_TABLE,
    "retailers": RETAILERS_TABLE,
    "credit_accounts": CREDIT_ACCOUNTS_TABLE,
    "orders": ORDERS_TABLE,
    "credit_transactions": CREDIT_TRANSACTIONS_TABLE,
    "collection_loans": COLLECTION_LOANS_TABLE,
    "installments": INSTALLMENTS_TABLE,
}
