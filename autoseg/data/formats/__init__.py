"""Readers of the supported dataset formats."""
