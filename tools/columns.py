"""Which column is which in a table a user brings: identifier columns, and the column holding the text.

Pure. Real exports name their columns anything (`编号, 评论内容, 标签`); a playbook that needs `id` and `text`
picks them itself when it is not told, and says what it picked.
"""

from __future__ import annotations

import re
from typing import Any

from runner.errors import did_you_mean
from runner.i18n import _
from runner.registry import ToolArgumentError
from runner.tables.shape import kind

_ID_NAME = re.compile(r"(?:^|[^a-z])(?:u?id|uuid|no|sn)$|^(?:u?id|uuid)(?:[^a-z]|$)|"
                      r"(?:user|customer|order|member|device|account|item|sku)id$|"
                      r"编号|单号|订单号|账号|流水号|序号|编码|代码|身份证|手机|电话|号码?$")


def is_id_name(name: str) -> bool:
    """Column names that hold identifiers (user_id, uid, 订单编号, 航班号, 机尾号, 会员号, 手机号, 工号 …): never
    summed as a metric."""
    return bool(_ID_NAME.search(str(name).strip().lower()))


def not_a_measure(values: list[Any]) -> str | None:
    """Why a numeric column is not a quantity to add up, judged by its values ('identifiers', 'clock times'), or
    None. Identifiers: whole numbers, nine in ten distinct, all of ten digits or more and one length (phone and
    order numbers), or one consecutive run (row numbers). Clock times: whole numbers read as HHMM (`计划起飞`
    1435), never a minute past 59."""
    numbers = []
    for value in values:
        if value in (None, ""):
            continue
        try:
            number = float(str(value).replace(",", ""))
        except ValueError:
            return None
        if not number.is_integer() or number < 0:
            return None
        numbers.append(int(number))
    if len(numbers) < 20:
        return None
    if all(n <= 2359 and n % 100 < 60 for n in numbers) and sum(n >= 100 for n in numbers) >= len(numbers) * 0.3:
        return "clock times"
    distinct = set(numbers)
    if len(distinct) >= 0.9 * len(numbers):
        lengths = [len(str(n)) for n in numbers]
        # ten digits or more, one length: phone, ID-card and order numbers (a daily KPI of that size is rare; one of
        # four to nine digits, page views or revenue, is common)
        one_length = max(lengths.count(k) for k in set(lengths)) >= 0.9 * len(numbers) and min(lengths) >= 10
        run = len(distinct) == len(numbers) and max(distinct) - min(distinct) + 1 <= 1.1 * len(distinct)
        if one_length or run:
            return "identifiers"
    return None


def _is_number(value: Any) -> bool:
    try:
        float(str(value).replace(",", ""))
    except ValueError:
        return False
    return True


def text_and_id(rows: list[dict[str, Any]], text: str, id_: str,
                name: str) -> tuple[list[dict[str, Any]], str, str, list[str]]:
    """Rows as `{id, text}` from the named columns ('auto': chosen here), the text and id columns used ('' for
    numbered rows), and notes saying what was chosen."""
    columns = list(rows[0]) if rows else []
    for column, argument in ((text, "text_column"), (id_, "id_column")):
        if column not in ("auto", "") and rows and column not in columns:
            raise ToolArgumentError(argument, _("'{name}' has no column '{column}'{hint} (columns: {joined})").format(
                                                  name=name, column=column, hint=did_you_mean(column, columns),
                                                  joined=', '.join(columns)))
    notes = []
    if text in ("auto", ""):
        text, lengths = _longest_text(rows, columns, name)
        if text != "text":
            notes.append(_("text taken from column '{text}' (on average {lengths:.1f} characters, the longest text "
                           "column; set text_column to use another)").format(text=text, lengths=lengths))
    if id_ in ("auto", ""):
        id_ = "id" if "id" in columns else next((c for c in columns if is_id_name(c) and c != text), "")
        if id_ and id_ != "id":
            notes.append(_("ids taken from column '{column}'").format(column=id_))
        elif not id_:
            notes.append(_("no id column: rows are numbered from 1"))
    out = [{"id": str(row.get(id_)) if id_ and row.get(id_) not in (None, "") else str(n),
            "text": "" if row.get(text) is None else str(row.get(text))} for n, row in enumerate(rows, start=1)]
    return out, text, id_, notes


def _longest_text(rows: list[dict[str, Any]], columns: list[str], name: str) -> tuple[str, float]:
    best, best_length = "", -1.0
    for column in columns:
        values = [row.get(column) for row in rows[:2000] if row.get(column) not in (None, "")]
        words = [v for v in values if isinstance(v, str) and kind(v) == "text"]  # not numbers, not dates
        if not values or len(words) < len(values) / 2:
            continue
        average = sum(len(v) for v in words) / len(words)
        if average > best_length:
            best, best_length = column, average
    if not best:
        raise ToolArgumentError("text_column", _("'{name}' has no column of text (columns: {joined}); set "
                                                 "text_column").format(name=name, joined=', '.join(columns)))
    return best, best_length
