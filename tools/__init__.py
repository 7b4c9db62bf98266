"""Built-in tools, one module per family. The registry reaches this package through the `playbook.tools`
entry point (`builtin`), as it does any plugin, and imports a family's module the first time one of its
tools is needed — `playbook validate` of a playbook that writes a sheet loads `tools.sheet`, not the
scraper (`tests/test_plugins.py` checks this catalog against what the modules register)."""

TOOL_MODULES = {
    "check.ad_law": "tools.checks",
    "check.numbers": "tools.checks",
    "feed.read": "tools.feed",
    "file.read": "tools.file",
    "file.write": "tools.file",
    "http.request": "tools.http_request",
    "kb.search": "tools.kb",
    "metrics.anomalies": "tools.metrics",
    "metrics.chart": "tools.metrics",
    "metrics.compare": "tools.metrics_compare",
    "metrics.load": "tools.metrics",
    "metrics.scorecard": "tools.scorecard",
    "notify.webhook": "tools.notify",
    "runs.previous": "tools.trend",
    "sheet.read": "tools.sheet",
    "sheet.write": "tools.sheet",
    "text.cluster": "tools.text",
    "text.dedupe": "tools.text",
    "text.keywords": "tools.text",
    "trend.collect": "tools.trend",
    "trend.diff": "tools.trend",
    "web.fetch": "tools.web",
    "web.login": "tools.scrape",
    "web.scrape": "tools.scrape",
}

__all__ = ["TOOL_MODULES"]
