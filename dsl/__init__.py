"""The gate language: grammar, parser, typed AST, compiler and diagnostics. Never imports engine."""
