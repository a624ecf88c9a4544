"""The watchdog's mail: each incident mailed once when it opens and once when it clears,
and what happens when a mail cannot go out (:func:`notify`, which :func:`mediamon.ops.health.run`
calls after recording what it found)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import TYPE_CHECKING

import sqlalchemy as sa

from mediamon.alerts.smtp import MailServerRefusal, refused_for_good, server_refusal
from mediamon.errors import MailNotSent
from mediamon.ops.thresholds import HealthThresholds

if TYPE_CHECKING:
    from mediamon.ops.health import HealthResult

logger = logging.getLogger(__name__)

Send = Callable[[EmailMessage], None]
FLAP_WINDOW = HealthThresholds().flap_window


class IncidentMailError(MailNotSent):
    """Some incident or recovery mails could not be sent (the SMTP server is down): their
    incidents stay recorded and un-notified, so the next run mails them; or the server
    refused them for good (recorded in ``mail_refused``, not offered again).

    Attributes:
        errors: One ``key: Error: text`` (or ``key: refused for good: answer``) a mail.
        mailed: The incident mails that did go out, by dedupe key.
        recovered: The recovery mails that did go out.
        result: The run's :class:`HealthResult` (set by :func:`run`).
    """

    exit_code = 1  # like an incident that could not be mailed for want of a connection

    def __init__(
        self, errors: list[str], mailed: list[str], recovered: list[str], refused: int = 0
    ) -> None:
        waiting = "those not refused for good" if refused else "them"
        super().__init__(
            f"{len(errors)} incident mail(s) not sent: "
            + "; ".join(errors[:3])
            + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
            + f" (the incidents stay recorded; the next run mails {waiting})"
        )
        self.errors = errors
        self.mailed = mailed
        self.recovered = recovered
        self.result: HealthResult | None = None


# An incident that opened and cleared while no mail could go out (the SMTP server down,
# no mediamon_smtp connection or MEDIAMON_OPS_EMAIL yet, every send refused) was recorded
# and never mailed: its INCIDENT mail was still due when it resolved, and only notified
# incidents got a RESOLVED mail. As Alertmanager and Grafana do with an alert that fired
# and resolved between two notifications, ops now get one mail for it, its RESOLVED mail
# saying that it opened and cleared unannounced (mediamon.ops.mail): nothing is mailed
# twice (recovery_notified_at marks it, notified_at stays null, so bi.incidents still
# shows the INCIDENT mail never went out), and there is no INCIDENT mail for a problem
# that is over. One mail per incident rather than one summary: it is the path, lock and
# template every other incident mail takes. Only those resolved within
# MISSED_MAIL_WINDOW of the run: mail set up months after installation would otherwise
# bring months of history, which bi.incidents holds anyway.
MISSED_MAIL_WINDOW = timedelta(days=7)
# A flapping incident's recovery waits until it has stayed clear for the flap window.
# A mail the server refused for good (mail_refused: its answer) ends the incident's mail:
# the same message is refused again, and its recovery would tell of a mail never seen.
MAIL_DUE = (
    "mail_refused is null and ((resolved_at is null and notified_at is null)"
    " or (resolved_at is not null and recovery_notified_at is null"
    "     and (notified_at is not null or resolved_at >= :missed_since)"
    "     and (not flapping or resolved_at <= :held_until)))"
)


def notify(
    engine: sa.Engine,
    send: Send,
    sender: str,
    recipients: Sequence[str],
    at: datetime,
    zone: tzinfo = UTC,
    flap_window: timedelta = FLAP_WINDOW,
) -> tuple[list[str], list[str]]:
    """Mail every open incident not yet mailed and every recovery not yet mailed (also of
    an incident that opened and cleared unmailed, within :data:`MISSED_MAIL_WINDOW`; of a
    flapping one, once it stayed clear for ``flap_window``), each once: the row is
    locked while its mail goes out and marked in the same transaction,
    so overlapping runs cannot both send it. A run finding the row locked waits for the
    other run's send and then sees the row marked (skipping it instead left it unmailed
    in this run's report, which failed the watchdog while the mail was going out). A
    failed send leaves it for the next run; one the server refused for good (5xx to
    ``DATA`` or to every recipient) is recorded in ``mail_refused`` and not tried again.

    Returns:
        The dedupe keys of the incident mails and the recovery mails sent.

    Raises:
        IncidentMailError: at least one mail was not sent (after every other was tried
            and the sent ones recorded); ``send``'s errors are in its message.
        MailServerRefusal: the server refuses every mail (530 authentication required, a
            refused sender, relay denied): nothing more is tried, the rest stay due.
    """
    from mediamon.ops import mail as ops_mail

    mailed: list[str] = []
    recovered: list[str] = []
    errors: list[str] = []
    refused = 0
    window = {"missed_since": at - MISSED_MAIL_WINDOW, "held_until": at - flap_window}
    with engine.connect() as conn:
        due = conn.execute(
            sa.text(f"select incident_id from incidents where {MAIL_DUE} order by incident_id"),
            window,
        ).scalars()
        due_ids = list(due)
    for incident_id in due_ids:
        with engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    f"select * from incidents where incident_id = :id and ({MAIL_DUE})"
                    # Waits while another run mails it; each transaction locks one row,
                    # so a wait never holds a lock another run needs.
                    " for update"
                ),
                {"id": incident_id, **window},
            ).one_or_none()
            if row is None:
                continue  # another run mailed it meanwhile, or it changed
            recovery = row.resolved_at is not None
            # Built inside the try, like alert mails: an address the mail library refuses
            # fails the mails, not the watchdog run.
            try:
                send(
                    ops_mail.incident_message(
                        row,
                        recovery,
                        sender,
                        recipients,
                        zone=zone,
                        unannounced=row.notified_at is None,
                        flap_window=flap_window,
                    )
                )
            except Exception as error:  # noqa: BLE001 - any failure means "not sent": retried
                refusal = server_refusal(error)
                if refusal is not None:  # every other mail would get the same answer
                    raise MailServerRefusal(
                        f"{refusal}; nothing more sent ({len(mailed) + len(recovered)} incident"
                        " mail(s) before it): the incidents stay recorded, unmailed, until the"
                        " mediamon_smtp connection or the relay is fixed"
                    ) from error
                answer = refused_for_good(error)
                if answer is None:
                    logger.info("mailing incident %s failed: %s", row.dedupe_key, error)
                    errors.append(f"{row.dedupe_key}: {type(error).__name__}: {error}")
                    continue
                # Offered again every 15 minutes, a refused message got ~96 refusals a
                # day, which is what gets a sender listed as a spammer.
                logger.warning("incident mail %s refused for good: %s", row.dedupe_key, answer)
                errors.append(f"{row.dedupe_key}: refused for good: {answer}")
                refused += 1
                conn.execute(
                    sa.text("update incidents set mail_refused = :answer where incident_id = :id"),
                    {"answer": answer, "id": incident_id},
                )
                continue
            column = "recovery_notified_at" if recovery else "notified_at"
            conn.execute(
                sa.text(f"update incidents set {column} = :at where incident_id = :id"),
                {"at": at, "id": incident_id},
            )
            (recovered if recovery else mailed).append(row.dedupe_key)
    if errors:
        raise IncidentMailError(errors, mailed, recovered, refused)
    return mailed, recovered
