"""Referentials: the national reference data every service names (identity, directory, terminology)."""
