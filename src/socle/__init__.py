"""Socle: a self-hostable digital-health platform built on FHIR R4."""

__version__ = "0.1.0"
