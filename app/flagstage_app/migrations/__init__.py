"""Alembic migrations of the insights API's schema, run by `flagstage_app.migrating`."""
