"""Attribute counts read from a feed's bytes, for when lxml's tree cannot say them.

lxml (without ``huge_tree``) stops at a start tag of more than 10 MB, and its recovering
parser then leaves that element out of the tree, so the tree showed none of its
attributes; feedparser's lenient parser, which reads the document itself, looks each
attribute up by scanning all of them: a tag of 1.25 million attributes (15 MB) held a
source for minutes. These counts are made on the bytes, in linear time.
"""

from __future__ import annotations

import re

START_TAG = re.compile(rb"<([A-Za-z_:][^\s<>/]*)[^<>]*")
# An attribute as a lenient parser takes it: a name after white space, then "=";
# namespace declarations are counted apart (feeds.MAX_NAMESPACES).
ATTRIBUTE = re.compile(rb"\s(?!xmlns[:=\s])[^\s=<>/\"']+\s*=")
MIN_ATTRIBUTE_BYTES = 3  # " a=": a tag shorter than the bound times this cannot pass it


def crowded_tag(data: bytes, max_attributes: int) -> str | None:
    """What is wrong with the first start tag in ``data`` of more than
    ``max_attributes`` attributes (``<channel> has 1,250,000 attributes (at most 256)``),
    or None."""
    if data.count(b"=") <= max_attributes:  # 15 MB of "<a/>" need not be scanned
        return None
    for tag in START_TAG.finditer(data):
        if tag.end() - tag.start() <= max_attributes * MIN_ATTRIBUTE_BYTES:
            continue
        count = sum(1 for _ in ATTRIBUTE.finditer(data, tag.end(1), tag.end()))
        if count > max_attributes:
            name = tag.group(1)[:40].decode("utf-8", "replace").rpartition(":")[2]
            return f"<{name}> has {count:,} attributes (at most {max_attributes})"
    return None
