"""Built-in tools, one module per family. Importing this package registers them."""

from tools import feed, file, metrics, notify, scrape, sheet, text, web

__all__ = ["feed", "file", "metrics", "notify", "scrape", "sheet", "text", "web"]
