"""`python -m taehwa` runs the CLI."""

from taehwa.cli.main import main

main()
