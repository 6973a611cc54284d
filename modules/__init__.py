"""Regulatory modules written in the gate language, one folder per module; lib/ holds shared definitions."""
