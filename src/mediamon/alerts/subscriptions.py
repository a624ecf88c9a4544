"""Who left which topic's mail: ``mail_subscriptions``, written by the unsubscribe page
(:mod:`mediamon.bi.unsubscribe_page`) and read by alert and digest delivery just before
each mail, so a recipient who unsubscribed while a run was mailing others gets nothing
more from it either."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mediamon.alerts.unsubscribe import ALL_TOPICS, Subscription
from mediamon.db.tables import mail_subscriptions
from mediamon.topics.definitions import TopicSet

logger = logging.getLogger(__name__)

VIA = frozenset({"one-click", "page"})


def set_state(
    conn: sa.Connection, subscription: Subscription, *, subscribed: bool, at: datetime, via: str
) -> None:
    """Record that the recipient left (or rejoined) the topic: an upsert on (recipient,
    topic), so a second click, a retried POST or a link scanner's repeat changes nothing."""
    if via not in VIA:
        raise ValueError(f"via {via!r}: expected one of {sorted(VIA)}")
    row = {
        "recipient": subscription.recipient.lower(),
        "topic": subscription.topic,
        "state": "subscribed" if subscribed else "unsubscribed",
        "changed_at": at,
        "via": via,
    }
    c = mail_subscriptions.c
    statement = insert(mail_subscriptions).values(row)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[c.recipient, c.topic],
            set_={
                "state": statement.excluded.state,
                "changed_at": statement.excluded.changed_at,
                "via": statement.excluded.via,
            },
            # A state already in force keeps the time it was first set.
            where=c.state != statement.excluded.state,
        )
    )


def left_topics(conn: sa.Connection, recipients: Iterable[str]) -> dict[str, frozenset[str]]:
    """Per recipient (lower case), the topic keys they left (:data:`ALL_TOPICS` among
    them when they left every mail); recipients who left nothing are absent."""
    addresses = sorted({address.lower() for address in recipients})
    if not addresses:
        return {}
    c = mail_subscriptions.c
    left: dict[str, set[str]] = {}
    for recipient, topic in conn.execute(
        sa.select(c.recipient, c.topic).where(c.recipient.in_(addresses), c.state == "unsubscribed")
    ):
        left.setdefault(recipient, set()).add(topic)
    return {recipient: frozenset(topics) for recipient, topics in left.items()}


def wants(left: Mapping[str, frozenset[str]], recipient: str, topic: str) -> bool:
    """Whether ``recipient`` still gets ``topic``'s mail, given :func:`left_topics`."""
    gone = left.get(recipient.lower(), frozenset())
    return ALL_TOPICS not in gone and topic not in gone


def still_wants(conn: sa.Connection, recipient: str, topic: str) -> bool:
    """:func:`wants`, read now: the check just before a mail goes out."""
    return wants(left_topics(conn, [recipient]), recipient, topic)


@dataclass(frozen=True)
class OwnTopic:
    """A topic whose recipients name an address, as its "Manage your alerts" page lists
    it: the key, the name, how they get it (``immediate``, ``daily``, ``weekly``) and
    whether they left it."""

    key: str
    name: str
    modes: tuple[str, ...]
    left: bool


def own_topics(
    conn: sa.Connection, topics: TopicSet, recipient: str
) -> tuple[tuple[OwnTopic, ...], bool]:
    """The topics ``topics`` (the stored ones, which delivery mails from) send
    ``recipient``, and whether they left every mail (:data:`ALL_TOPICS`)."""
    address = recipient.lower()
    gone = left_topics(conn, [address]).get(address, frozenset())
    own = []
    for topic in topics:
        modes = [r.cadence or "immediate" for r in topic.recipients if r.address.lower() == address]
        if modes:
            distinct = tuple(dict.fromkeys(modes))
            own.append(OwnTopic(topic.key, topic.name, distinct, topic.key in gone))
    return tuple(own), ALL_TOPICS in gone
