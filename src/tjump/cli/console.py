"""Where the command line speaks to the user: messages and progress go to stderr."""

from rich.console import Console

console = Console(stderr=True)
