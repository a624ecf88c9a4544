"""One fetch's whole time: servers on 127.0.0.1 answering each request just inside the
download deadline, over redirect hops and retries. Each test names a docs/faults.md row.

The hops and retries here answer late by the server's own clock (1.5 s each, against a
download deadline of 2 s and so a whole fetch of 4 s): which of them is ever requested
does not depend on this machine's speed, only that loopback costs less than 0.5 s a hop.
"""

from __future__ import annotations

import threading
import time

from mediamon.ingest.fetch import FETCH_DEADLINE_FACTOR, fetch
from mediamon.ingest.politeness import BudgetSpent, HostLimiter
from mediamon.ingest.session import make_session
from tests.support.fault_server import (
    FaultServer,
    delayed,
    fault_server,
    redirect,
    respond,
    slow_drip,
)
from tests.support.faults import USER_AGENT, rss

DEADLINE_S = 2.0
LATE_S = 1.5  # inside DEADLINE_S; the third one ends past the whole fetch's 4 s


def test_a_redirect_chain_of_late_hops_stops_at_the_whole_fetch_deadline(
    server: FaultServer,
) -> None:
    """Five redirect hops each answering just inside the download deadline: each hop got
    a deadline of its own, so the chain took 6 x 1.5 s here, 6 x 60 s by default, and
    the feed at its end was read. One deadline now bounds the fetch: the third hop is
    cut at 4 s and the rest never requested."""
    for n in range(5):
        server.route(f"/r{n}", delayed(LATE_S, redirect(f"/r{n + 1}")))
    server.route("/r5", delayed(LATE_S, respond(rss([]), content_type="application/rss+xml")))
    with make_session(USER_AGENT, retries=0) as session:
        result = fetch(session, server.url("/r0"), deadline_s=DEADLINE_S, timeout=(1.0, 5.0),
                       allow_private_network=True)  # fmt: skip
    whole = FETCH_DEADLINE_FACTOR * DEADLINE_S
    assert result.error == f"fetch took longer than {whole:g} s over 2 redirects"
    assert [server.hits(f"/r{n}") for n in range(6)] == [1, 1, 1, 0, 0, 0]
    assert result.final_url == server.url("/r2")
    assert result.redirects == (server.url("/r0"), server.url("/r1"))


def test_retries_of_late_server_errors_stop_at_the_whole_fetch_deadline(
    server: FaultServer,
) -> None:
    """A 503 after a long wait, every time: each of the three retries got a deadline of
    its own (4 x 60 s by default). The third request is cut at the whole fetch's end and
    no fourth is sent."""
    url = server.route("/busy", delayed(LATE_S, respond(b"busy", "503 Service Unavailable")))
    with make_session(USER_AGENT, retries=3, backoff_s=0.01) as session:
        result = fetch(session, url, deadline_s=DEADLINE_S, timeout=(1.0, 5.0),
                       allow_private_network=True)  # fmt: skip
    whole = FETCH_DEADLINE_FACTOR * DEADLINE_S
    assert result.error == f"fetch took longer than {whole:g} s over 2 retries"
    assert server.hits("/busy") == 3


def test_a_retry_after_past_the_whole_fetch_deadline_sends_no_retry(
    server: FaultServer,
) -> None:
    """A late 503 asking to wait 20 s (under the 30 s mediamon waits for): the retry
    waited for it and went out at 21.5 s. The wait counts against the fetch: no retry,
    and the error says the fetch's time ran out (the host stays deferred)."""
    wait = respond(b"later", "503 Service Unavailable", headers={"Retry-After": "20"})
    url = server.route("/later", delayed(LATE_S, wait))
    with make_session(USER_AGENT, retries=3, backoff_s=0.01) as session:
        result = fetch(session, url, deadline_s=DEADLINE_S, timeout=(1.0, 5.0),
                       allow_private_network=True)  # fmt: skip
    whole = FETCH_DEADLINE_FACTOR * DEADLINE_S
    assert result.error == f"fetch took longer than {whole:g} s"
    assert server.hits("/later") == 1


def test_a_slot_wait_on_a_busy_host_ends_at_start_by() -> None:
    """A request waiting for a host whose connections are all held woke only when one
    was freed (another page's download: up to its 60 s deadline) and was refused then,
    past its ``start_by`` (a budget, or a fetch's end). It is refused at ``start_by``."""
    limiter = HostLimiter()
    held, release = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def hold() -> None:
        with limiter.slot("example.com", 0.0, 1, 30.0):
            held.set()
            release.wait(30)

    def wait_for_slot() -> None:
        try:
            with limiter.slot("example.com", 0.0, 1, 30.0, time.monotonic() + 0.2):
                outcome.append(None)
        except BudgetSpent as spent:
            outcome.append(spent)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    waiter = threading.Thread(target=wait_for_slot, daemon=True)
    waiter.start()
    waiter.join(10)  # the slot is held until release, far longer than start_by
    still_waiting = waiter.is_alive()
    release.set()
    holder.join(10)
    waiter.join(10)
    assert not still_waiting
    assert len(outcome) == 1 and isinstance(outcome[0], BudgetSpent)


def test_a_slow_robots_txt_read_counts_against_the_pages_deadline(server: FaultServer) -> None:
    """A robots.txt dripping a byte every 0.2 s: its read had a deadline of its own (30 s
    an exchange, 60 s in all) on top of the page's whole fetch (2 x its download
    deadline), so a page whose download deadline was 2 s took 30 s here, 180 s by
    default. The read now counts as the page's first request: its exchange gets the
    page's deadline, and the fetch ends within its whole deadline."""
    server.route("/robots.txt", slow_drip(0.2, limit_s=40.0))
    page = server.route("/page", respond("<html><body><p>正文</p></body></html>"))
    with make_session(USER_AGENT, retries=0) as session:
        started = time.monotonic()
        result = fetch(session, page, deadline_s=DEADLINE_S, timeout=(1.0, 5.0),
                       allow_private_network=True, check_robots=True)  # fmt: skip
        took = time.monotonic() - started
    assert took < FETCH_DEADLINE_FACTOR * DEADLINE_S + 0.5, took
    assert result.error is not None and result.error.startswith(
        f"disallowed by robots.txt: robots.txt unreachable (download took longer than"
        f" {DEADLINE_S:g} s)"
    ), result.error
    assert server.hits("/page") == 0


def test_a_robots_txt_read_cut_by_the_fetchs_end_is_not_kept(server: FaultServer) -> None:
    """After two late redirect hops (1.5 s each of a 4 s fetch), the page's own site has a
    slow robots.txt: its read ran 30 s past the fetch's end. It now gets the second that
    is left, and what it did not read is this fetch's failure, not the site's rules:
    the next page of that site reads the file again (before, a read cut short was kept
    as "unreachable: disallow all" for every page of the site for the task's run)."""
    with fault_server() as site:
        site.route("/robots.txt", slow_drip(0.2, limit_s=40.0))
        page = site.route("/page", respond("<html><body><p>正文</p></body></html>"))
        server.route("/r0", delayed(LATE_S, redirect("/r1")))
        server.route("/r1", delayed(LATE_S, redirect(page)))
        hosts = {f"127.0.0.1:{server.port}", f"127.0.0.1:{site.port}"}
        with make_session(USER_AGENT, retries=0) as session:
            started = time.monotonic()
            result = fetch(session, server.url("/r0"), deadline_s=DEADLINE_S,
                           timeout=(1.0, 5.0), private_hosts=hosts, check_robots=True)  # fmt: skip
            took = time.monotonic() - started
            again = fetch(session, page, deadline_s=DEADLINE_S, timeout=(1.0, 5.0),
                          private_hosts=hosts, check_robots=True)  # fmt: skip
        whole = FETCH_DEADLINE_FACTOR * DEADLINE_S
        assert took < whole + 0.5, took
        assert result.error == f"fetch took longer than {whole:g} s over 2 redirects"
        assert site.hits("/robots.txt") == 2 and site.hits("/page") == 0
        assert again.error is not None and "robots.txt unreachable" in again.error
