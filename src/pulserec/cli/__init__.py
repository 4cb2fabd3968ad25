"""Command-line commands; each module exposes register(app) to add its command."""
