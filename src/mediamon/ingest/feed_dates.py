"""An RSS or Atom item's publication time, as feeds write it.

feedparser reads RFC 822 and ISO 8601 dates, and fills in from today's clock whatever it
cannot read; Chinese feeds write dates it cannot read whole. A date is believed only when
it is read whole and names a day, time and UTC offset that exist; otherwise the item has
no time and the reason is said.
"""

from __future__ import annotations

import calendar
import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from mediamon.limits import cap

# feedparser's ISO 8601 fallback reads the longest start of a date it knows and fills in
# the rest from today's clock: "2024年4月20日 08:00" and "2024/04/20 08:00", as Chinese
# feeds write dates, became the 1st of the current month (the year alone was read), and
# "2024-02-31" 2 March. A date that starts with its year is read here instead, whole.
YEAR_FIRST = re.compile(r"\s*\d{4}")
# A date written with a sign first: a year before 1 or ISO 8601's truncated forms
# ("-YY", "--MM-DD"), no date a news item has (see _read_date).
SIGNED_START = re.compile(r"\s*[-+]")
CHINESE_DATE = re.compile(
    r"(\d{4})\s*[年/.-]\s*(\d{1,2})\s*[月/.-]\s*(\d{1,2})\s*日?"
    r"(?:[T\s]*(\d{1,2})\s*[:：]\s*(\d{2})(?:\s*[:：]\s*(\d{2}))?)?"
)
UTC_NAMES = ("GMT", "UTC")  # a final GMT or UTC is dropped: naive times are UTC anyway
# An offset after a year-first date and time: "+08:00", "+0800", "GMT+8", "UTC+08:00".
ZONE_OFFSET = re.compile(r"(?:GMT|UTC)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
# A UTC offset at the end of an RFC 822 date (+0800, -05:00). Real ones lie within
# ±14:00; feedparser added whatever it was given ("+99:99": four days earlier).
TRAILING_OFFSET = re.compile(r"[+-](\d{2}):?(\d{2})\s*$")
MAX_UTC_OFFSET = timedelta(hours=14)
# Zone names after a year-first date, in hours east of UTC: RFC 822's and feedparser's
# (ET, CT, MT, PT and their standard and daylight forms, military letters), except that
# CST is China Standard Time, as the Chinese CMSs that write such dates mean it, and the
# names of the region's other zones.
ZONE_NAMES = {
    "ut": 0, "gmt": 0, "z": 0, "utc": 0,
    "adt": -3, "ast": -4, "at": -4, "edt": -4, "est": -5, "et": -5, "cdt": -5, "ct": -6,
    "mdt": -6, "mst": -7, "mt": -7, "pdt": -7, "pst": -8, "pt": -8,
    "a": -1, "n": 1, "m": -12, "y": 12, "met": 1, "mest": 2,
    "cst": 8, "hkt": 8, "sgt": 8, "awst": 8, "jst": 9, "kst": 9,
}  # fmt: skip


def entry_time(entry: Any) -> tuple[datetime | None, str | None]:
    """The entry's publication time (else its update time), and why a date it gives
    was not believed."""
    problem = None
    for key in ("published", "updated"):
        raw = entry.get(key) if key in entry else None  # no "updated" made of "published"
        if not isinstance(raw, str) or not raw.strip():
            continue
        moment, why = _read_date(raw, entry.get(f"{key}_parsed"))
        if moment is not None:
            return moment, None
        problem = problem or f"date {cap(raw.strip(), 60)!r} {why}"
    return None, problem


def _read_date(raw: str, parsed: Any) -> tuple[datetime | None, str]:
    """``raw`` as a UTC time (feedparser's reading ``parsed`` unless the date starts
    with its year), or None and why not."""
    if SIGNED_START.match(raw):
        # feedparser reads these as ISO 8601's truncated forms and fills in the rest from
        # today's clock: PHP's zero date "-0001-11-30T00:00:00+00:00" became 2000-01-01,
        # "--11-30" the 30th of November this year, "-24" the 1st of this month.
        return None, "is not a date (no whole year, or a year before 1)"
    if YEAR_FIRST.match(raw):
        moment = _year_first_date(raw.strip())
        if moment is None:
            return None, "is not a date (year, month and day, then the time)"
        offset = moment.utcoffset() or timedelta()
    else:
        written = TRAILING_OFFSET.search(raw)
        offset = (
            timedelta(hours=int(written[1]), minutes=int(written[2])) if written else timedelta()
        )
        if written and int(written[2]) > 59:
            return None, "has an impossible UTC offset (at most ±14:00)"
        moment = _time(parsed)
        if moment is None:
            return None, "is not a date"
        # feedparser applies any offset it finds, wherever it stands ("+9959 (x)", "+999",
        # "-9999 GMT": days off): its reading must be the written clock time in a zone
        # that exists. (The time as written, by the mail library: 200 characters of it.)
        clock = email.utils.parsedate(raw[:200])
        if clock is not None:
            try:
                local = datetime(*clock[:6])
            except ValueError:
                local = None
            if local is not None and not _plausible_offset(local - moment.replace(tzinfo=None)):
                return None, "has an impossible UTC offset (at most ±14:00)"
    if abs(offset) > MAX_UTC_OFFSET:
        return None, "has an impossible UTC offset (at most ±14:00)"
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC), ""
    except OverflowError:  # year 1 east of UTC
        return None, "is not a date"


def _year_first_date(text: str) -> datetime | None:
    """An ISO 8601 date and time, or a Chinese feed's (``2024年4月20日 08:00``,
    ``2024/04/20 08:00:00 +0800``, ``2024.04.20``, ``2024-04-20 08:00 CST``), read
    whole; None if it is neither or names a day, time, offset or zone that does not
    exist (:data:`ZONE_NAMES`)."""
    # Not a regex search for \s*(?:GMT|UTC)$: tried at each of a run of spaces, it read
    # the rest of the run each time (20,000 spaces then "x": 4.3 s for one date).
    if text[-3:].upper() in UTC_NAMES:
        text = text[:-3].rstrip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    match = CHINESE_DATE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        written = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    zone = text[match.end() :].strip()
    if not zone:
        return written
    offset = ZONE_OFFSET.fullmatch(zone)
    if offset is not None:
        hours, minutes = int(offset[2]), int(offset[3] or 0)
        delta = timedelta(hours=hours, minutes=minutes) * (-1 if offset[1] == "-" else 1)
        if minutes > 59 or abs(delta) > MAX_UTC_OFFSET:
            return None
        return written.replace(tzinfo=timezone(delta))
    # A zone's name after a year-first date: feedparser reads only the day of such a date
    # ("2024-04-20 13:59 PST" was midnight UTC, 22 hours off), so the name is looked up
    # here; one not known leaves the date unbelieved.
    named = ZONE_NAMES.get(zone.lower())
    return None if named is None else written.replace(tzinfo=timezone(timedelta(hours=named)))


def _plausible_offset(offset: timedelta) -> bool:
    """Whether ``offset`` (the written time minus its UTC reading) is a UTC offset that
    exists: at most 14 hours, in whole quarter hours."""
    return abs(offset) <= MAX_UTC_OFFSET and offset % timedelta(minutes=15) == timedelta()


def _time(value: Any) -> datetime | None:
    """feedparser's parsed times are UTC struct_time."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None
