"""Report formats, one file per format behind engine.formatters.base.Formatter."""
