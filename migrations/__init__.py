"""Alembic migrations of the dav_cms schema (installed as ``dav_cms.migrations``)."""
