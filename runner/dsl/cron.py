"""Cron expressions in a timezone: validation and the next fire time. Pure."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner.i18n import _


class CronError(ValueError):
    """A cron expression or timezone that cannot be used; the message says how to fix it."""


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(_("unknown timezone '{timezone}' (use an IANA name such as Asia/Shanghai)").format(
                            timezone=timezone)) from None


def check_cron(expression: str, timezone: str) -> None:
    next_time(expression, timezone, datetime.now().timestamp())


def next_time(expression: str, timezone: str, after: float) -> float:
    """The first fire time strictly after `after` (epoch seconds), in the schedule's own timezone."""
    from cronsim import CronSim, CronSimError

    zone = _zone(timezone)
    if len(expression.split()) != 5:
        raise CronError(_("'{expression}' is not a five-field cron expression (minute hour day month weekday), "
                          "e.g. '0 9 * * *'").format(expression=expression))
    try:
        moment = next(CronSim(expression, datetime.fromtimestamp(after, zone)))
    except CronSimError as exc:
        raise CronError(_("invalid cron expression '{expression}': {exc}").format(expression=expression,
                                                                                   exc=exc)) from None
    return moment.timestamp()


def local_text(moment: float, timezone: str) -> str:
    return datetime.fromtimestamp(moment, _zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")
