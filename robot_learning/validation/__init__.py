"""Sim-to-real validation: replay recorded episodes in the twin, measure, diagnose, report."""
