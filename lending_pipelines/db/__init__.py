"""The operational database: tables, migrations, the embedded server and set-based queries."""
