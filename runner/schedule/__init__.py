"""Schedules: `scheduler.py` fires due cron schedules (catch-up, overlap, pause) through the engine; the cron
expressions themselves are part of the DSL (`runner/dsl/cron.py`)."""
