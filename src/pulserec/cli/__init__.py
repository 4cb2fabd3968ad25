"""The `pulserec` command line."""
