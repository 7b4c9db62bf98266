"""Built-in tools, one module per family. Importing this package registers them."""

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
