"""The words of alert mails and digests in each supported locale, and how times are shown.

A small message catalogue (a dict per locale, ``str.format`` placeholders) rather than
gettext: two languages, a few dozen strings, all reviewed together. Every key exists in
every locale (a test checks it). Times are always shown with their UTC offset, e.g.
``2024-04-17 09:09 (UTC+08:00)``: "CST" is China to some readers and Chicago to others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

DEFAULT_LOCALE = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "subject_alert": "[mediamon] {topic}: {stories} in {hours}, {lift_phrase}",
        "stories_1": "1 story",
        "stories_n": "{n} stories",
        "lift_phrase": "about {lift}× the usual {expected}",
        "lift_phrase_new": "usually none",
        "hours_1": "1 hour",
        "hours_n": "{n} hours",
        "the_hours_1": "the hour",
        "the_hours_n": "the {n} hours",
        "reason": (
            "{stories} mentioning {topic} in {the_hours} to {end}, "
            "about {lift} times the usual {expected} for a {weekday} at this hour."
        ),
        "reason_new": (
            "{stories} mentioning {topic} in {the_hours} to {end}; "
            "on a {weekday} at this hour there are usually none."
        ),
        "context": (
            "All sources together published {total} in that time; "
            "{observed} of them mention {topic}."
        ),
        "alert_bar": "Alert: {topic}",
        "subject_late": "{subject} (sent {delay} late)",
        "late_note": (
            "Sent late: this alert was raised at {raised} and could not be mailed until now,"
            " {delay} later. Its figures are those of its window."
        ),
        "stories_heading_1": "The one story of the window",
        "stories_heading_n": "The {n} stories of the window",
        "with_zone": "{text} (times {zone})",
        "stories_gone": (
            "Not listed: {gone} of the stories counted when the alert was raised"
            " ({observed}); since then they were merged into other stories or no longer"
            " match the topic."
        ),
        "order_rule": (
            "Most relevant first: the topic in the headline, then the most outlets, "
            "then the most mentions (up to {cap}), then the newest."
        ),
        "preheader_story": "{title} ({outlet})",
        "more_outlets_1": "+1 outlet",
        "more_outlets_n": "+{n} outlets",
        "more_heading": "More stories",
        "more_elsewhere": "{n} more stories: {link}",
        "more_link_text": "see them on the mediamon page",
        "all_link_text": "See these stories on the mediamon page",
        "all_elsewhere": "See these stories on the mediamon page: {link}",
        "more_not_shown": "{n} more stories are not listed here.",
        "no_title": "(no title)",
        "unknown_time": "time unknown",
        "chart_heading": "Stories per hour, last 7 days",
        "chart_alt": (
            "Bar chart of stories per hour over the last 7 days; the alert window at the "
            "right: {observed} observed, {expected} expected."
        ),
        "chart_alt_new": (
            "Bar chart of stories per hour over the last 7 days; the alert window at the "
            "right: {observed} observed, usually none."
        ),
        "chart_caption": (
            "Bars: stories per hour (times {zone}). Grey band: the range of the same hour "
            "in the previous {weeks} weeks. Red: the alert window."
        ),
        "chart_band": "usual range",
        "chart_window": "alert window",
        "chart_observed": "{observed} observed vs {expected} expected",
        "chart_observed_new": "{observed} observed, usually none",
        "table_heading": "Day by day",
        "table_day": "day",
        "table_stories": "stories",
        "table_usual": "usual",
        "table_peak": "busiest hour",
        "table_until": "(to {time})",
        "table_from": "(from {time})",
        "table_window": "Alert window {window}: {observed} observed, {expected} expected.",
        "table_window_new": "Alert window {window}: {observed} observed, usually none.",
        "details_heading": "Statistics",
        "details": (
            "p-value {p_value} (the chance of at least {stories} if the hour were "
            "ordinary); expected {expected_exact} from the topic's share of all stories at "
            "this hour of the week over the previous weeks, negative binomial model."
        ),
        "thresholds": "Thresholds: {thresholds}.",
        "why_alert": (
            "You get this mail because {address} is an immediate recipient of the topic "
            "{topic} (key {key}): one mail whenever its coverage spikes."
        ),
        "why_digest": (
            "You get this {cadence} digest because {address} is a {cadence} recipient of {topics}."
        ),
        "how_to_change": (
            "To change or stop it, ask mediamon's administrators ({contact}) to change "
            "the recipients of {topic} (key: {key}), or {unsubscribe}."
        ),
        "topic_terms": "Terms: {terms}",
        "topic_terms_exclude": "{terms}; excluding {exclude}",
        "more_terms": "{terms} and {n} more",
        "sentence_gap": " ",
        "unsubscribe_plain": "unsubscribe: {uri}",
        "unsubscribe_words": "unsubscribe",
        "manage_plain": "Manage your alerts: {uri}",
        "manage_words": "Manage your alerts",
        "reference": "Alert #{alert_id}, window {window}",
        "cadence_daily": "daily",
        "cadence_weekly": "weekly",
        "subject_digest_daily": "[mediamon] Daily digest {day}: {count} ({topics})",
        "subject_digest_weekly": "[mediamon] Weekly digest {first}–{last}: {count} ({topics})",
        "more_topics": "{names} and {n} more",
        "new_stories_1": "1 new story",
        "new_stories_n": "{n} new stories",
        "digest_heading": "{count} from {start} to {end}",
        "digest_capped": (
            "Listed here: {shown} of the {total}, at most {per_topic} per topic and"
            " {overall} in all; each topic says where to see the rest."
        ),
        "contents_heading": "In this digest:",
        "spikes_heading": "Spikes in this period",
        "spike_line": "{topic}: {observed} stories in {the_hours} to {end} (usually {expected})",
        "topic_heading": "{topic}: {count}",
        "unlisted_topics": (
            "{n} more topics have new stories in this period ({count} in all): {names}."
            " The plain-text version of this mail gives each one's count and link."
        ),
        "period": "Period: {start} to {end}",
    },
    "zh-CN": {
        "subject_alert": "[mediamon] {topic}：{hours}内 {stories}，{lift_phrase}",
        "stories_1": "1 篇报道",
        "stories_n": "{n} 篇报道",
        "lift_phrase": "约为平常 {expected} 篇的 {lift} 倍",
        "lift_phrase_new": "平常几乎没有",
        "hours_1": "1 小时",
        "hours_n": "{n} 小时",
        "the_hours_1": "1 小时",
        "the_hours_n": "{n} 小时",
        "reason": (
            "截至 {end} 的 {the_hours}内，有 {stories}提到「{topic}」，"
            "约为平常{weekday}这个时段 {expected} 篇的 {lift} 倍。"
        ),
        "reason_new": (
            "截至 {end} 的 {the_hours}内，有 {stories}提到「{topic}」；"
            "平常{weekday}这个时段几乎没有。"
        ),
        "context": "同一时段所有来源共发布 {total}，其中 {observed} 篇提到「{topic}」。",
        "alert_bar": "警报：{topic}",
        "subject_late": "{subject}（迟发 {delay}）",
        "late_note": (
            "迟发：本提醒生成于 {raised}，此前未能发出，直到现在（{delay}之后）才发出。"
            "其中的数字仍是提醒时段的数字。"
        ),
        "stories_heading_1": "本时段的 1 篇报道",
        "stories_heading_n": "本时段的 {n} 篇报道",
        "with_zone": "{text}（时间为 {zone}）",
        "stories_gone": (
            "发出警报时统计的 {observed} 篇中有 {gone} 篇未列出："
            "此后它们已并入其他报道，或不再与该话题匹配。"
        ),
        "order_rule": (
            "排序：标题提及优先，其次是转载媒体多、提及次数多（最多计 {cap} 次），"
            "最后按时间由新到旧。"
        ),
        "preheader_story": "{title}（{outlet}）",
        "more_outlets_1": "另有 1 家媒体转载",
        "more_outlets_n": "另有 {n} 家媒体转载",
        "more_heading": "其他报道",
        "more_elsewhere": "另有 {n} 篇报道：{link}",
        "more_link_text": "在 mediamon 页面查看",
        "all_link_text": "在 mediamon 页面查看这些报道",
        "all_elsewhere": "在 mediamon 页面查看这些报道：{link}",
        "more_not_shown": "另有 {n} 篇报道未列出。",
        "no_title": "（无标题）",
        "unknown_time": "时间不详",
        "chart_heading": "最近 7 天每小时报道数",
        "chart_alt": (
            "最近 7 天每小时报道数的柱状图；"
            "右侧为警报时段：实际 {observed} 篇，预期 {expected} 篇。"
        ),
        "chart_alt_new": (
            "最近 7 天每小时报道数的柱状图；右侧为警报时段：实际 {observed} 篇，平常几乎没有。"
        ),
        "chart_caption": (
            "柱：每小时报道数（时间为 {zone}）。灰带：前 {weeks} 周同一时段的范围。红色：警报时段。"
        ),
        "chart_band": "平常范围",
        "chart_window": "警报时段",
        "chart_observed": "实际 {observed} 篇，预期 {expected} 篇",
        "chart_observed_new": "实际 {observed} 篇，平常几乎没有",
        "table_heading": "逐日统计",
        "table_day": "日期",
        "table_stories": "报道数",
        "table_usual": "平常",
        "table_peak": "最多的一小时",
        "table_until": "（至 {time}）",
        "table_from": "（自 {time}）",
        "table_window": "警报时段 {window}：实际 {observed} 篇，预期 {expected} 篇。",
        "table_window_new": "警报时段 {window}：实际 {observed} 篇，平常几乎没有。",
        "details_heading": "统计细节",
        "details": (
            "p 值 {p_value}（若该时段与平常无异，出现至少 {stories}的概率）；"
            "预期值 {expected_exact} 按前几周同一时段该话题在全部报道中的占比估算，负二项分布模型。"
        ),
        "thresholds": "阈值：{thresholds}。",
        "why_alert": (
            "您收到此邮件，是因为 {address} 是话题「{topic}」（key {key}）的即时收件人："
            "该话题报道量激增时即发送。"
        ),
        "why_digest": "您收到此{cadence}摘要，是因为 {address} 订阅了 {topics} 的{cadence}摘要。",
        "how_to_change": (
            "如需更改或停止，请联系 mediamon 管理员（{contact}）修改「{topic}」（key: {key}）"
            "的收件人，或{unsubscribe}。"
        ),
        "topic_terms": "匹配词：{terms}",
        "topic_terms_exclude": "{terms}；排除：{exclude}",
        "more_terms": "{terms} 及另外 {n} 个",
        "sentence_gap": "",
        "unsubscribe_plain": "退订：{uri}",
        "unsubscribe_words": "退订",
        "manage_plain": "管理您的提醒：{uri}",
        "manage_words": "管理您的提醒",
        "reference": "警报 #{alert_id}，时段 {window}",
        "cadence_daily": "每日",
        "cadence_weekly": "每周",
        "subject_digest_daily": "[mediamon] 每日摘要 {day}：{count}（{topics}）",
        "subject_digest_weekly": "[mediamon] 每周摘要 {first}–{last}：{count}（{topics}）",
        "more_topics": "{names} 及另外 {n} 个话题",
        "new_stories_1": "1 篇新报道",
        "new_stories_n": "{n} 篇新报道",
        "digest_heading": "{start} 至 {end}：{count}",
        "digest_capped": (
            "本邮件列出其中 {shown} 篇（共 {total} 篇）：每个话题最多 {per_topic} 篇，"
            "全部最多 {overall} 篇；其余报道见各话题下的说明。"
        ),
        "contents_heading": "本期话题：",
        "spikes_heading": "本期报道高峰",
        "spike_line": "{topic}：截至 {end} 的 {the_hours}内 {observed} 篇（平常 {expected} 篇）",
        "topic_heading": "{topic}：{count}",
        "unlisted_topics": (
            "另有 {n} 个话题在本期有新报道（共 {count} 篇）：{names}。"
            "本邮件的纯文本版本列出每个话题的篇数和链接。"
        ),
        "period": "时段：{start} 至 {end}",
    },
}
WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "zh-CN": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
}


@dataclass(frozen=True)
class Catalog:
    """The messages of one locale."""

    locale: str

    @classmethod
    def for_locale(cls, locale: str | None) -> Catalog:
        """The catalogue of ``locale``; an unknown one falls back to English."""
        return cls(locale if locale in MESSAGES else DEFAULT_LOCALE)

    def __call__(self, name: str, /, **values: Any) -> str:
        return MESSAGES[self.locale][name].format(**values)

    def counted(self, key: str, n: int) -> str:
        """``key_1`` for one, ``key_n`` otherwise (``more_outlets_n``: "+3 outlets")."""
        return self(f"{key}_1" if n == 1 else f"{key}_n", n=n)

    def weekday(self, moment: datetime, *, short: bool = False) -> str:
        name = WEEKDAYS[self.locale][moment.weekday()]
        return name[:3] if short and not self.is_chinese else name

    @property
    def is_chinese(self) -> bool:
        return self.locale.startswith("zh")


def utc_offset(moment: datetime) -> str:
    """``UTC+08:00`` for an aware datetime."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_time(moment: datetime, zone: tzinfo, stated: str | None = None) -> str:
    """``2024-04-17 09:09 (UTC+08:00)``: the time in ``zone`` with its offset; without
    it when the offset is ``stated`` (said once above a list of times: "(UTC+08:00)" on
    each of a hundred compact lines said nothing new). A time on the other side of a
    clock change keeps its own offset, so none reads as the stated zone's."""
    local = moment.astimezone(zone)
    offset = utc_offset(local)
    return f"{local:%Y-%m-%d %H:%M}" if offset == stated else f"{local:%Y-%m-%d %H:%M} ({offset})"


def local_span(start: datetime, end: datetime, zone: tzinfo) -> str:
    """``2024-04-17 09:00–10:00 (UTC+08:00)``, the date repeated only when it changes."""
    first, last = start.astimezone(zone), end.astimezone(zone)
    if first.date() == last.date() and utc_offset(first) == utc_offset(last):
        return f"{first:%Y-%m-%d %H:%M}–{last:%H:%M} ({utc_offset(last)})"
    return f"{local_time(first, zone)} – {local_time(last, zone)}"


def usually_none(expected: float) -> bool:
    """Whether an expected count is shown as "usually none": it rounds to 0 (a topic
    next to never seen) or is not a number. The mail's text, its chart and the chart's
    text table all say it the same way; "13 observed vs 0 expected" read as a fault."""
    return not math.isfinite(expected) or number(expected) == "0"


def number(value: float) -> str:
    """A count for people: ``0.2``, ``2.3``, ``45``, ``6667`` (two significant digits
    below 10, whole numbers from 10 up, never scientific notation); ``–`` for a value that
    is not a number (never ``inf``)."""
    if not math.isfinite(value):
        return "–"
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if value <= 0:
        return "0"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value < 0.1 else f"{value:.1f}"


# Below this a p-value is shown as "< 1e-300": the detector's floor (its score is
# -log10(max(p, 1e-300))), under which a tail probability underflows to 0.0.
MIN_SHOWN_P_VALUE = 1e-300


def p_value_text(value: float) -> str:
    """A p-value for people: ``1.7e-10``, ``0.03``; ``< 1e-300`` for one that underflowed
    (never "0": no count is impossible); ``–`` for one that is not a number."""
    if not math.isfinite(value) or value < 0:
        return "–"
    if value < MIN_SHOWN_P_VALUE:
        return "< 1e-300"
    return f"{value:.2g}"
