"""One module per ``image-factory`` subcommand (discovered by ``reconciler.cli``)."""
