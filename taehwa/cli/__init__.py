"""The command line: `taehwa …`, a thin Typer layer over the platform's services."""
