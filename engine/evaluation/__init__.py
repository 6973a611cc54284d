"""Accuracy measurement against labelled data sets (entity spans for the PII/secret detectors)."""
