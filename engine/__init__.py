"""Clearance engine: loading, running, reporting; the CLI and HTTP server are thin shells."""
