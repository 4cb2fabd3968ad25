"""Offline evaluation: leakage-free splits, ranking metrics, batch evaluation and reports."""
