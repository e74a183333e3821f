"""Metrics shared by the analyses."""
