"""Semantic answer providers behind one async interface."""
