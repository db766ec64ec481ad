"""Maintenance scripts run from the repository root (``python -m scripts.NAME``); never imported by the product."""
