"""One module per command group; each imports downward only (ledger.cli.errors, .runtime, .options, .output)."""
