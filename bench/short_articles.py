"""Generated short-article pages: brief news and notices of 100-200 characters inside the
boilerplate of a full news site (navigation, lists of other stories, footer).

The shared corpora hold few such pages, yet they are where a length rule fails: a
precision pass that finds the 150 characters of a brief was replaced by the balanced
pass's page-wide text (F1 1.00 -> 0.11). These pages put that case into the development
set. Texts and templates are written for mediamon (fictional news, no third-party
content), so they ship with the repository; each template counts as one site in the
cross-validation, so a rule never sees the template it is tested on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class GeneratedPage:
    site: str
    id: str
    lang: str
    url: str
    html: str
    reference: str


_ZH_HEADLINES = (
    "市政府召开新闻发布会介绍上半年经济运行情况和下一步工作安排",
    "多地出台措施支持中小企业稳岗扩岗，专家解读政策亮点",
    "气象台发布暴雨蓝色预警，提醒市民注意出行安全",
    "第十二届国际图书博览会开幕，三百余家出版机构参展",
    "高校毕业生就业服务月启动，提供岗位超过两万个",
    "新能源汽车下乡活动走进县城，带动农村消费升级",
    "地铁五号线南延段完成全线轨道铺设，预计年底通车",
    "省博物馆推出夏季夜场开放，每周五、周六延时至晚九点",
    "全市中小学暑期托管服务报名开始，覆盖所有城区",
    "农业农村部部署秋粮生产工作，确保粮食稳产增产",
)
_EN_HEADLINES = (
    "City council approves budget for new riverside park after months of debate",
    "Local bakery celebrates 50 years with free bread for neighbours on Saturday",
    "School district announces later start times for high schools next fall",
    "Police seek witnesses after overnight break-in at downtown pharmacy",
    "Library extends weekend hours and adds a new children's reading room",
    "Heat advisory issued for the valley as temperatures near record highs",
    "Transit agency to add late-night bus service on three busy routes",
    "Volunteers plant 2,000 trees along the creek in a weekend cleanup",
    "Farmers market moves to the old rail yard while the square is repaved",
    "Hospital opens urgent care clinic in the east side shopping centre",
)

# Brief news and notices: (language, title, text). Fictional, written for these pages.
_BRIEFS = (
    (
        "zh",
        "市图书馆端午节期间开放时间调整",
        "市图书馆今日发布通知：端午节假期期间，总馆及各分馆开放时间调整为上午九时至下午五时，"
        "自助借还机正常服务。假期结束后恢复原开放时间，请读者合理安排借阅。",
    ),
    (
        "zh",
        "江滨路部分路段夜间施工临时封闭",
        "因管网改造需要，江滨路（解放桥至新华路段）将于本月十日至二十日每晚十时至次日凌晨五时"
        "临时封闭施工。过往车辆请绕行滨河大道，公交线路同步调整，给市民出行带来不便，敬请谅解。",
    ),
    (
        "zh",
        "我市首个社区共享菜园开园",
        "昨日，位于城东街道的首个社区共享菜园正式开园，六十余户居民认领了菜地。"
        "街道负责人介绍，菜园由闲置空地改造而成，收获的部分蔬菜将送给辖区内的独居老人。",
    ),
    (
        "zh",
        "关于开展消防安全检查的通知",
        "各单位：为做好夏季消防安全工作，定于七月一日至十五日对辖区内商场、学校和居民小区开展"
        "消防安全检查，重点检查疏散通道、消防设施和电动车充电管理。请各单位提前自查，做好配合。",
    ),
    (
        "en",
        "Pool opening delayed by a week",
        "The municipal pool will open on June 14 instead of June 7, the parks department said "
        "on Monday. A pump that failed its inspection is being replaced, and season passes "
        "bought before the delay will be extended by one week.",
    ),
    (
        "en",
        "Notice: water main flushing on Elm Street",
        "Crews will flush water mains on Elm Street between 3rd and 9th Avenue on Tuesday from "
        "9 a.m. to 3 p.m. Residents may notice discoloured water; run cold taps for a few "
        "minutes until it clears. Call the utility line with any questions.",
    ),
    (
        "en",
        "Museum reopens its east wing",
        "The county museum reopened its east wing on Friday after a two-year renovation. The "
        "wing now houses the textile collection, and admission remains free on the first "
        "Sunday of every month.",
    ),
    (
        "en",
        "Road race closes bridge on Sunday",
        "The harbour bridge will be closed to traffic from 6 a.m. to noon on Sunday for the "
        "annual road race. Shuttle buses will run from the stadium car park every ten minutes.",
    ),
)


def _portal_zh(title: str, text: str, n: int) -> str:
    """A Chinese news portal: channel bar, breadcrumb, a hot-news list, long footer."""
    channels = "".join(
        f'<li><a href="/{c}/">{c}</a></li>'
        for c in ("首页", "要闻", "国内", "国际", "财经", "科技", "体育", "娱乐", "汽车", "房产")
    )
    hot = "".join(
        f'<li><a href="/news/{n}{i}.html">{escape(h)}</a></li>' for i, h in enumerate(_ZH_HEADLINES)
    )
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}_本地新闻网</title></head><body>"
        f'<div class="top"><ul class="nav">{channels}</ul></div>'
        '<div class="crumb"><a href="/">首页</a> &gt; <a href="/local/">本地</a> &gt; 正文</div>'
        f'<div class="main"><div class="article"><h1>{escape(title)}</h1>'
        '<div class="info">2024-06-0%d 10:2%d 来源：本地新闻网</div>'
        % (n % 9 + 1, n % 10)
        + f'<div class="content"><p>{escape(text)}</p></div>'
        '<div class="editor">责任编辑：王明</div></div>'
        f'<div class="side"><h3>热点新闻</h3><ul>{hot}</ul>'
        f"<h3>图片新闻</h3><ul>{hot}</ul></div></div>"
        '<div class="footer"><p>关于我们 | 联系方式 | 广告服务 | 网站地图</p>'
        "<p>本网站所刊登的新闻、信息和各种专题专栏资料，均为本网版权所有，未经协议授权，"
        "禁止下载使用。</p><p>Copyright © 2024 本地新闻网 All Rights Reserved</p></div>"
        "</body></html>"
    )


def _notice_board_zh(title: str, text: str, n: int) -> str:
    """A government-style notice page: a short notice beside a long list of others."""
    others = "".join(
        f'<tr><td><a href="/tzgg/{n}{i}.html">{escape(h)}</a></td><td>2024-05-{10 + i}</td></tr>'
        for i, h in enumerate(_ZH_HEADLINES)
    )
    return (
        '<html><head><meta charset="utf-8"><title>通知公告</title></head><body>'
        '<div id="header"><a href="/">网站首页</a><a href="/zwgk/">政务公开</a>'
        '<a href="/bsfw/">办事服务</a><a href="/hdjl/">互动交流</a></div>'
        f'<table class="list"><tr><th>通知公告</th></tr>{others}</table>'
        f'<div id="zoom"><h2>{escape(title)}</h2><p>{escape(text)}</p>'
        '<p class="date">发布日期：2024年6月3日</p></div>'
        '<div id="footer">主办单位：某市人民政府办公室 网站标识码：0000000000 '
        "地址：人民路1号 邮编：100000</div></body></html>"
    )


def _local_news_en(title: str, text: str, n: int) -> str:
    """An English local-news site: menu, newsletter box, most-read list, footer."""
    menu = "".join(
        f'<a href="/{s.lower()}">{s}</a>'
        for s in ("News", "Sports", "Business", "Opinion", "Obituaries", "Events", "Weather")
    )
    popular = "".join(
        f'<li><a href="/story/{n}{i}">{escape(h)}</a></li>' for i, h in enumerate(_EN_HEADLINES)
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} | The Valley Courier</title></head><body>"
        f'<header><nav class="menu">{menu}</nav></header><main>'
        f'<article><h1>{escape(title)}</h1><p class="byline">By Staff Reporter</p>'
        f"<p>{escape(text)}</p></article>"
        '<section class="newsletter"><p>Sign up for our daily newsletter and get the '
        "headlines in your inbox every morning, free of charge.</p></section>"
        f"<aside><h2>Most read</h2><ol>{popular}</ol></aside></main>"
        "<footer><p>© 2024 The Valley Courier. All rights reserved. Terms of use, privacy "
        "policy and cookie settings apply to everyone who reads this site.</p></footer>"
        "</body></html>"
    )


def _blog_en(title: str, text: str, n: int) -> str:
    """A community bulletin: a brief post with comments and a long archive list."""
    archive = "".join(
        f'<li><a href="/posts/{n}{i}">{escape(h)}</a> <span>({3 + i} comments)</span></li>'
        for i, h in enumerate(_EN_HEADLINES)
    )
    return (
        '<html><head><meta charset="utf-8"><title>Bulletin</title></head><body>'
        '<div id="site-title"><a href="/">Neighbourhood Bulletin</a></div>'
        f'<div id="post"><h2>{escape(title)}</h2><div class="entry"><p>{escape(text)}</p></div>'
        '<div class="comments"><p>Great news, thanks for posting!</p>'
        "<p>Does anyone know whether the car park will be open as usual?</p></div></div>"
        f'<div id="archive"><h3>Recent posts</h3><ul>{archive}</ul></div>'
        '<div id="credits">Powered by a volunteer team. Contact the editors to submit '
        "a post.</div></body></html>"
    )


_TEMPLATES = {
    "zh": (("portal-zh", _portal_zh), ("notice-zh", _notice_board_zh)),
    "en": (("localnews-en", _local_news_en), ("bulletin-en", _blog_en)),
}


def pages() -> Iterator[GeneratedPage]:
    """Every brief in every template of its language (16 pages, 4 sites)."""
    for number, (lang, title, text) in enumerate(_BRIEFS):
        for site, template in _TEMPLATES[lang]:
            yield GeneratedPage(
                site=f"generated/{site}",
                id=f"{site}-{number}",
                lang=lang,
                url=f"https://{site}.example/{number}.html",
                html=template(title, text, number),
                reference=text,
            )
