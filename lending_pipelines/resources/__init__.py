"""One ConfigurableResource per external system, plus the operational database."""
