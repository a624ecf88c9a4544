"""Awkward content for tests of what people see: names and titles of any length, with no
spaces, in scripts that run right to left, only emoji, with entities and markup. Every
title mentions 台湾, so that it matches the tests' taiwan topic."""

from __future__ import annotations

# 300 characters or more without a space: Latin, a URL, CJK without punctuation, German.
LATIN = "台湾" + "Supercalifragilisticexpialidocious" * 9
URL = "https://example.org/" + "a-very-long-path-segment/" * 12 + "?q=" + "x" * 60
CJK = "台湾" + "中华民国国防部今日宣布" * 28
GERMAN = "台湾" + "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamten" * 5
EMOJI = "🇹🇼🔥🚀👍🏽👨‍👩‍👧‍👦" * 10
RTL = "عاجل: تايوان 台湾 מבזק חדשות על טייוואן 中国大陆 عاجل"
ENTITIES = '台湾 Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; real < & > "q"'
TITLES = (LATIN, URL + " 台湾", CJK, GERMAN, EMOJI, RTL, ENTITIES)
# A 200-character topic name; the longest source name sources.yaml allows (a slug).
TOPIC_NAME = ("台湾很长的话题名称" * 23)[:200]
SOURCE_NAME = "nachrichtenagentur-" + "x" * 45
