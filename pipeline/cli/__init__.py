"""The `redline` command, one module per subcommand."""
