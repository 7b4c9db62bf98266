"""Built-in tools, one module per family. Importing this package registers them; the registry imports it
through the `playbook.tools` entry point (`builtin`), as it does any plugin."""

from tools import (
    checks,
    feed,
    file,
    http_request,
    metrics,
    metrics_compare,
    notify,
    scorecard,
    scrape,
    sheet,
    text,
    trend,
    web,
)

__all__ = ["checks", "feed", "file", "http_request", "metrics", "metrics_compare", "notify", "scorecard", "scrape",
           "sheet", "text", "trend", "web"]
