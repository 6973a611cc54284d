"""The language server for gate files (`clearance lsp`): a shell over the dsl, like the CLI."""
