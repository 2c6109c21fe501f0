"""Shared rich consoles: results on stdout, messages and progress on stderr.

When stdout is not a terminal (pipes, logs, tests) tables get a wide fixed
width instead of rich's 80-column default, so numbers are never cut.
"""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)
