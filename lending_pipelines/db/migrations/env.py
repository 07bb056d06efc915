"""Alembic environment: the connection comes from `lending_pipelines.db.migrate`."""

from alembic import context

import lending_pipelines.db.tables  # noqa: F401,E402
from lending_pipelines.db.meta import SCHEMA, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=SCHEMA,
    include_schemas=True,
)
connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
with context.begin_transaction():
    context.run_migrations()
