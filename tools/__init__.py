"""Built-in tools, one module per family. Importing this package registers them."""

from tools import file, sheet, web

__all__ = ["file", "sheet", "web"]
