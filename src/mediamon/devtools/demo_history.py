"""Four weeks of invented background news for the demo, ending in a burst of Taiwan
stories, written as a seed-format archive: the alerts DAG needs a baseline to compare
with before it can show a spike. Deterministic (seeded), fictional, written for mediamon."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

# (headline, paragraph) templates: a story's title is its first paragraph's headline, so
# the demo's mails list headlines a reader would recognize, not text cut mid-phrase.
BACKGROUND = (
    (
        "{city}社会消费品零售总额增长{pct}%",
        "{city}市统计局公布数据显示，本月社会消费品零售总额同比增长{pct}%，餐饮收入增幅明显。",
    ),
    (
        "{city}第{n}批重点项目开工 总投资约{money}亿元",
        "{city}今年第{n}批重点项目集中开工，总投资约{money}亿元，涵盖交通、水利和城市更新。",
    ),
    (
        "{city}未来{n}天持续降雨",
        "气象部门预计，未来{n}天{city}将出现持续降雨，最高气温{temp}度，提醒市民注意出行安全。",
    ),
    (
        "{city}队{n}比{m}取胜",
        "{city}队在昨晚的联赛中以{n}比{m}取胜，主教练{name}表示球队防守仍需加强。",
    ),
    (
        "第{n}届{city}国际图书博览会开幕",
        "第{n}届{city}国际图书博览会开幕，{m}家出版机构参展，预计接待观众超过{money}万人次。",
    ),
    (
        "{city}地铁{n}号线延伸段试运行",
        "{city}地铁{n}号线延伸段完成试运行，预计下月开通，全线设站{m}座。",
    ),
    (
        "{city}发布新型电池材料成果",
        "研究团队在{city}发布新型电池材料成果，能量密度提升约{pct}%，有望用于电动汽车。",
    ),
    (
        "{city}清明假期接待游客{money}万人次",
        "{city}文旅部门称，清明假期接待游客{money}万人次，同比增长{pct}%。",
    ),
    (
        "专家：{city}等城市楼市成交回升",
        "专家{name}认为，房地产市场仍处于调整期，{city}等城市的成交量有所回升。",
    ),
    (
        "{city}春季招聘会提供岗位{money}千个",
        "{city}举办春季招聘会，{m}家企业提供岗位{money}千个，应届毕业生占求职者多数。",
    ),
    (
        "{city}流感病例增加{pct}%",
        "{city}卫生部门提醒，近期流感病例增加{pct}%，建议老人和儿童及时接种疫苗。",
    ),
    (
        "{city}港一季度吞吐量约{money}万标箱",
        "{city}港一季度集装箱吞吐量约{money}万标箱，外贸航线新增{n}条。",
    ),
)
TAIWAN = (
    (
        "台湾海峡附近出现{n}批次舰机活动 {city}观察人士呼吁克制",
        "台湾海峡附近今天出现{n}批次舰机活动，台湾方面表示正密切监视，{city}观察人士呼吁各方克制。",
    ),
    (
        "台海局势牵动市场 {city}股市早盘跌{pct}%",
        "台海局势牵动市场，{city}股市早盘下跌{pct}%，分析师{name}认为避险情绪升温。",
    ),
    (
        "领导人就职前夕 {name}：两岸对话渠道应畅通",
        "台湾地区领导人就职前夕，两岸关系再度成为焦点，{name}表示对话渠道仍应保持畅通。",
    ),
    (
        "多国就台海和平稳定发表声明 {city}称将持续关注",
        "多国外交官员就台海和平稳定发表声明，{city}方面称将持续关注事态发展，第{n}次表态。",
    ),
    (
        "台海紧张 部分航线保险费用上调{pct}%",
        "台湾航运业者称，受台海紧张影响，部分航线保险费用上调约{pct}%，{city}港口加强调度。",
    ),
    (
        "学者{name}：台湾问题沟通不能中断",
        "学者{name}在{city}研讨会上指出，台湾问题仍是中美关系中最敏感的议题，相关沟通不能中断。",
    ),
)
CITIES = (
    "北京",
    "上海",
    "广州",
    "深圳",
    "成都",
    "武汉",
    "杭州",
    "南京",
    "西安",
    "重庆",
    "香港",
    "新加坡",
)
NAMES = ("王明", "李华", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄蕾", "周强", "吴敏")


def _story(
    rng: random.Random,
    templates: tuple[tuple[str, str], ...],
    sentences: int,
    lead: tuple[str, str] | None = None,
) -> tuple[str, list[str]]:
    """A headline and its paragraphs: ``sentences`` templates (``lead`` first, when
    given), the first one's headline."""
    if lead is None:
        picked = rng.sample(templates, k=min(sentences, len(templates)))
    else:
        others = [t for t in templates if t != lead]
        picked = [lead, *rng.sample(others, k=min(sentences - 1, len(others)))]
    filled = []
    for headline, paragraph in picked:
        values = {
            "city": rng.choice(CITIES),
            "name": rng.choice(NAMES),
            "n": rng.randint(2, 40),
            "m": rng.randint(0, 9),
            "pct": round(rng.uniform(0.5, 18), 1),
            "money": rng.randint(12, 980),
            "temp": rng.randint(12, 33),
        }
        filled.append((headline.format(**values), paragraph.format(**values)))
    return filled[0][0], [paragraph for _, paragraph in filled]


def _write(
    folder: Path, number: int, when: datetime, kind: str, story: tuple[str, list[str]]
) -> None:
    millis = int(when.timestamp() * 1000)
    title, paragraphs = story
    url = f"https://history.demo.invalid/{when:%Y/%m/%d}/{kind}-{number}.html"
    html = "".join(f"<p>{p}</p>" for p in paragraphs)
    text = f"<!--{millis}-->\n[{title}]({url})\n------\n<div><article>{html}</article></div>\n"
    (folder / f"{number:05d}_{kind}.txt").write_text(text, encoding="utf-8")


def write_history(folder: Path, burst_end: datetime, weeks: int = 4, seed: int = 2024) -> int:
    """Write the archive: about two stories an hour with a daily cycle and a Taiwan story
    now and then, for ``weeks`` before ``burst_end``'s hour, then nine distinct Taiwan
    stories in that last hour. Returns the number of files written."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    burst_hour = burst_end.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=1
    )
    number = 0
    hour = burst_hour - timedelta(weeks=weeks)
    while hour <= burst_hour:  # the burst hour has its usual news too
        local_hour = (hour.hour + 8) % 24  # a Beijing-time news day
        rate = 3 if 8 <= local_hour <= 22 else 1
        for _ in range(rng.randint(rate - 1 if rate > 1 else 0, rate + 1)):
            kind = "taiwan" if rng.random() < 0.05 else "background"
            templates = TAIWAN if kind == "taiwan" else BACKGROUND
            when = hour + timedelta(minutes=rng.randint(0, 59))
            _write(folder, number, when, kind, _story(rng, templates, 3))
            number += 1
        hour += timedelta(hours=1)
    for index in range(9):  # the burst: nine outlets' stories within the hour
        when = burst_hour + timedelta(minutes=rng.randint(0, 59))
        # each leads with another template, as nine outlets write nine headlines
        lead = TAIWAN[index % len(TAIWAN)]
        _write(folder, number, when, "taiwan", _story(rng, TAIWAN, 4, lead))
        number += 1
    return number
