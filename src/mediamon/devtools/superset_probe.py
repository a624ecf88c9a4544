"""What an analyst meets in a running Superset, asked the way they ask it, for
``make superset-check``: every chart's data through Superset's REST API (the chart data
endpoint the dashboard itself calls, with the query each chart's saved form builds) and
the dashboard drawn in headless chromium, with Superset's own error boxes looked for.

Nothing here imports Superset (it needs SQLAlchemy < 2); it talks HTTP to a server on
127.0.0.1."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from mediamon.devtools.chromium import Chromium, Page

REQUEST_TIMEOUT_S = 120.0
# a dashboard of eight charts on a busy 2-core machine: each chart's query and drawing
DRAW_TIMEOUT_S = 180.0
DESKTOP_WIDTH = 1440
DESKTOP_HEIGHT = 1000

# What the dashboard shows while a chart is not drawn yet, and what it shows for a chart
# that failed: Superset's ErrorAlert / ErrorMessageWithStackTrace (role="alert", the
# "error-alert" test id) and the chart holder's messages.
PAGE_STATE_JS = r"""(() => {
  const holders = [...document.querySelectorAll('.dashboard-component-chart-holder')];
  const title = (h) => (h.querySelector('[data-test="editable-title"], .header-title')
                        || {}).textContent || '';
  const loading = holders.filter(h => h.querySelector('.loading, [aria-label="Loading"]'));
  const drawn = holders.filter(h => h.querySelector(
      '[data-test="slice-container"] canvas, [data-test="slice-container"] table'));
  const alerts = (h) => [...h.querySelectorAll(
      '[role="alert"], [data-test="error-alert"], .alert-danger, .ant-alert-error')];
  const failed = holders.filter(h => alerts(h).length);
  const line = (e) => e.innerText.replace(/\s+/g, ' ').trim().slice(0, 300);
  const errors = failed.flatMap(h => alerts(h)
    .map(e => (title(h).trim() || '(chart)') + ': ' + line(e)));
  const pageErrors = [...document.querySelectorAll(
      '[data-test="error-alert"], .ant-alert-error, .alert-danger')]
    .filter(e => !e.closest('.dashboard-component-chart-holder'))
    .map(line);
  return {holders: holders.length, loading: loading.length, drawn: drawn.length,
          failed: failed.length,
          errors: errors.concat(pageErrors), path: location.pathname,
          height: document.documentElement.scrollHeight};
})()"""


# Titles an article may carry that are markup as written (a feed entity-escapes them;
# ingest stores them as text): the dashboard must show them as text. Superset's table
# chart draws a cell that looks like HTML as HTML (through its sanitizer, which keeps
# <img>, <a href> and <b>) unless its form says ``allow_render_html: false``, and
# Superset 6.1 defaults it to true. As text, a cell shows the sanitized markup
# (``<img src>``), so a title is found by its opening tag, not whole.
MARKUP_TITLES = (
    "<img src=x onerror=\"document.title='mediamon-xss'\">",
    "<a href=\"javascript:document.title='mediamon-xss'\">a javascript: link</a>",
    "<b>bold</b> in a title",
)

# The markup titles whose opening tag no table cell of a chart shows as text, and the
# first cells holding elements such a title makes when drawn as markup.
MARKUP_SHOWN_JS = r"""((titles) => {
  const cells = [...document.querySelectorAll('[data-test="slice-container"] td')];
  const opening = (t) => t.slice(0, t.search(/[\s>]/));
  const missing = titles.filter(t => !cells.some(c => c.textContent.includes(opening(t))));
  const elements = cells.filter(c => c.querySelector('img, a, b')).map(c => c.innerHTML);
  return {missing, elements: elements.slice(0, 5), title: document.title};
})"""


# A topic name that is markup as written (an administrator's topics file may hold one):
# an ECharts chart's tooltip, which Superset builds as HTML, must show it as text.
# Superset 6.1 encodes a series name (echarts' encodeHTML) before it sanitizes the
# tooltip's HTML, so no chart option is needed; the probe hovers to prove it stays so.
MARKUP_TOPIC = "<b>bold</b><img src=x onerror=\"document.title='mediamon-xss'\"> topic"

# The canvases of the charts (their centres, in CSS pixels), to hover over.
CANVASES_JS = r"""[...document.querySelectorAll('[data-test="slice-container"] canvas')]
  .map(c => c.getBoundingClientRect())
  .filter(r => r.width > 50 && r.height > 50)
  .map(r => [r.left, r.top, r.width, r.height])"""

# The ECharts tooltip on show (appended to <body>) holding the markup topic's name: its
# text as shown, and the elements in it a name drawn as markup makes.
TOOLTIP_JS = r"""((name) => {
  const tips = [...document.querySelectorAll('body > div')]
    .filter(d => d.style.zIndex === '9999999' && d.style.display !== 'none'
                 && d.style.opacity !== '0');
  const tip = tips.find(d => d.textContent.includes('topic')
                             && (d.textContent.includes('bold') || d.querySelector('img')));
  if (!tip) return null;
  return {text: tip.textContent.replace(/\s+/g, ' ').trim().slice(0, 300),
          shown: tip.textContent.includes(name.slice(0, 11)),
          elements: [...tip.querySelectorAll('b, img, a')].map(e => e.outerHTML).slice(0, 3),
          title: document.title};
})"""


class SupersetProbeError(RuntimeError):
    """What an analyst would see go wrong: a chart that errors or shows nothing."""


@dataclass(frozen=True)
class ChartResult:
    """One chart's answer: its rows, or Superset's error."""

    name: str
    rows: int
    error: str | None


def _timeseries_query(params: Mapping[str, Any]) -> dict[str, Any]:
    """The query Superset's ECharts time-series charts build from their form (x axis at
    its time grain, one series per group, a series limit, pivoted by the x axis)."""
    x_axis = params["x_axis"]
    metrics = list(params["metrics"])
    groupby = list(params.get("groupby", []))
    sort_metric = params.get("timeseries_limit_metric") or metrics[0]
    query: dict[str, Any] = {
        "columns": [
            {
                "columnType": "BASE_AXIS",
                "sqlExpression": x_axis,
                "label": x_axis,
                "expressionType": "SQL",
                "timeGrain": params.get("time_grain_sqla"),
            },
            *groupby,
        ],
        "metrics": metrics,
        "orderby": [[sort_metric, not params.get("order_desc", True)]],
        "series_columns": groupby,
        "row_limit": params.get("row_limit"),
        "series_limit": params.get("limit", 0),
        "series_limit_metric": params.get("timeseries_limit_metric"),
        "post_processing": [
            {
                "operation": "pivot",
                "options": {
                    "index": [x_axis],
                    "columns": groupby,
                    "aggregates": {m: {"operator": "mean"} for m in metrics},
                    "drop_missing_columns": not params.get("show_empty_columns", True),
                },
            },
            {"operation": "flatten"},
        ],
    }
    return query


def _table_query(params: Mapping[str, Any]) -> dict[str, Any]:
    """The query Superset's table chart builds in raw-records mode."""
    return {
        "columns": list(params["all_columns"]),
        "orderby": [json.loads(o) for o in params.get("order_by_cols", [])],
        "row_limit": params.get("row_limit"),
    }


def chart_query_context(
    chart_id: int, dataset_id: int, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The chart data request for one saved chart, as the dashboard sends it.

    Charts exported without a saved query context (``query_context: null``) cannot be
    asked through ``GET /api/v1/chart/{id}/data/`` (Superset answers "Chart has no query
    context saved"), so the query is built from the chart's form like the frontend does.

    Raises:
        SupersetProbeError: a chart type this check does not know how to ask.
    """
    viz_type = params.get("viz_type", "")
    if viz_type == "table" and params.get("query_mode") == "raw":
        query = _table_query(params)
    elif viz_type.startswith("echarts_timeseries"):
        query = _timeseries_query(params)
    else:
        raise SupersetProbeError(f"chart {chart_id}: no query known for viz_type {viz_type!r}")
    query["filters"] = [
        {"col": f["subject"], "op": f["operator"], "val": f.get("comparator")}
        for f in params.get("adhoc_filters", [])
        if f.get("expressionType") == "SIMPLE"
    ]
    query["extras"] = {"having": "", "where": ""}
    if params.get("time_grain_sqla"):
        query["extras"]["time_grain_sqla"] = params["time_grain_sqla"]
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": True,
        "queries": [query],
        "form_data": {**params, "slice_id": chart_id},
        "result_format": "json",
        "result_type": "full",
    }


def _error_text(response: requests.Response) -> str:
    """Superset's own words for a failed request: ``errors[].message`` or ``message``."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    messages = [e.get("message", "") for e in body.get("errors", []) if isinstance(e, dict)]
    if not messages and body.get("message"):
        messages = [
            json.dumps(body["message"]) if not isinstance(body["message"], str) else body["message"]
        ]
    text = "; ".join(messages) or response.text[:300]
    # one line: PostgreSQL's errors come with the statement's line and a caret below it
    return f"HTTP {response.status_code}: " + " ".join(text.split())


class SupersetApi:
    """A logged-in REST session (JWT from ``/api/v1/security/login`` and the CSRF token
    Superset wants on every write)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        login = self.session.post(
            f"{self.base_url}/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": False},
            timeout=REQUEST_TIMEOUT_S,
        )
        if login.status_code != 200:
            raise SupersetProbeError(f"Superset login failed: {_error_text(login)}")
        self.session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        csrf = self.get("/api/v1/security/csrf_token/")
        self.session.headers["X-CSRFToken"] = csrf["result"]
        self.session.headers["Referer"] = self.base_url

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.session.get(
            f"{self.base_url}{path}", params=params, timeout=REQUEST_TIMEOUT_S
        )
        if response.status_code != 200:
            raise SupersetProbeError(f"GET {path}: {_error_text(response)}")
        return dict(response.json())

    def charts(self) -> list[dict[str, Any]]:
        """Every chart: id, name, its dataset's id and its saved form."""
        query = json.dumps(
            {"columns": ["id", "slice_name", "datasource_id", "params"], "page_size": 100}
        )
        return list(self.get("/api/v1/chart/", q=query)["result"])

    def chart_data(self, chart: Mapping[str, Any]) -> ChartResult:
        """Ask for one chart's data; its row count or Superset's error."""
        name = str(chart["slice_name"])
        try:
            params = json.loads(chart["params"] or "{}")
            context = chart_query_context(chart["id"], chart["datasource_id"], params)
        except (ValueError, KeyError, TypeError, SupersetProbeError) as error:
            return ChartResult(name, 0, f"its saved form cannot be asked: {error}")
        response = self.session.post(
            f"{self.base_url}/api/v1/chart/data", json=context, timeout=REQUEST_TIMEOUT_S
        )
        if response.status_code != 200:
            return ChartResult(name, 0, _error_text(response))
        results = response.json().get("result", [])
        errors = [str(r["error"]) for r in results if r.get("error")]
        if errors:
            return ChartResult(name, 0, " ".join("; ".join(errors).split()))
        return ChartResult(name, sum(int(r.get("rowcount") or 0) for r in results), None)


def check_charts(api: SupersetApi, expected: Sequence[str]) -> tuple[list[ChartResult], list[str]]:
    """Every chart's data, and one line for each chart that errors or returns no rows (the
    demo data gives every chart of the dashboard rows) or is one of ``expected`` missing."""
    charts = api.charts()
    results = [api.chart_data(chart) for chart in sorted(charts, key=lambda c: c["id"])]
    problems = [f"chart {r.name!r}: {r.error}" for r in results if r.error]
    problems += [
        f"chart {r.name!r}: no rows on the demo data" for r in results if not r.error and not r.rows
    ]
    missing = sorted(set(expected) - {r.name for r in results})
    problems += [f"chart {name!r}: not in Superset after the import" for name in missing]
    return results, problems


def browser_login_cookie(base_url: str, username: str, password: str) -> dict[str, Any]:
    """Log in through Superset's login form as a browser does; the session cookie, in
    DevTools' ``Network.setCookie`` form."""
    session = requests.Session()
    form = session.get(f"{base_url}/login/", timeout=REQUEST_TIMEOUT_S)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text) or re.search(
        r'"csrf_token"\s*:\s*"([^"]+)"', form.text
    )
    data = {"username": username, "password": password}
    if token:
        data["csrf_token"] = token.group(1)
    session.post(f"{base_url}/login/", data=data, timeout=REQUEST_TIMEOUT_S)
    cookie = session.cookies.get("session")
    me = session.get(f"{base_url}/api/v1/me/", timeout=REQUEST_TIMEOUT_S)
    if not cookie or me.status_code != 200:
        raise SupersetProbeError(
            f"Superset's login form did not log in: /api/v1/me/ {me.status_code}"
        )
    return {"name": "session", "value": cookie, "url": base_url, "httpOnly": True}


def _wait_drawn(page: Page, charts: int, deadline: float) -> dict[str, Any]:
    """Poll the dashboard until each of ``charts`` charts is drawn or shows its error and
    none is loading, or ``deadline`` passes; the page's last state."""
    while True:
        state: dict[str, Any] = page.evaluate(PAGE_STATE_JS)
        done = state["drawn"] + state["failed"] >= charts
        if (state["holders"] >= charts and not state["loading"] and done) or (
            time.monotonic() > deadline
        ):
            return state
        time.sleep(0.5)


def markup_problems(page: Page) -> list[str]:
    """One line for each of :data:`MARKUP_TITLES` no table cell on ``page`` shows as text,
    and one naming the cells drawn as markup (with the page's title: a script that ran
    there changes it)."""
    markup = page.evaluate(f"{MARKUP_SHOWN_JS}({json.dumps(list(MARKUP_TITLES))})")
    problems = [f"the title {title!r} is not shown as text" for title in markup["missing"]]
    if markup["elements"]:
        problems.append(
            f"table cells drawn as markup: {markup['elements']} (page title {markup['title']!r})"
        )
    return problems


def tooltip_problems(page: Page) -> list[str]:
    """Hover over every chart's canvas until a tooltip shows :data:`MARKUP_TOPIC` (seeded
    as a topic's name); one line if none does, or if it is drawn as markup (a ``<b>`` or
    ``<img>`` element in the tooltip, or a script's change to the page's title)."""
    for left, top, width, height in page.evaluate(CANVASES_JS):
        for step in range(5, 100, 6):
            for level in (0.5, 0.8, 0.3):
                page.call(
                    "Input.dispatchMouseEvent",
                    type="mouseMoved",
                    x=left + width * step / 100,
                    y=top + height * level,
                )
                seen = page.evaluate(f"{TOOLTIP_JS}({json.dumps(MARKUP_TOPIC)})")
                if seen is None:
                    continue
                if seen["elements"] or not seen["shown"] or seen["title"] == "mediamon-xss":
                    return [
                        f"a chart's tooltip draws the topic name {MARKUP_TOPIC!r} as markup:"
                        f" {seen['elements']} (shown {seen['text']!r}, page title"
                        f" {seen['title']!r})"
                    ]
                return []
    return [f"no chart's tooltip showed the topic name {MARKUP_TOPIC!r} when hovered"]


def check_dashboard_page(
    base_url: str, slug: str, cookie: Mapping[str, Any], charts: int, screenshot: Path
) -> list[str]:
    """Open the dashboard at desktop width in headless chromium, logged in, wait until
    every chart is drawn or shows its error, and save a screenshot of the whole dashboard
    (failed or not); one line for each error box, one if charts were not drawn, and one
    for each of :data:`MARKUP_TITLES` (seeded as top stories) no table cell shows as text."""
    with Chromium() as browser:
        page = browser.open(
            f"{base_url}/superset/dashboard/{slug}/",
            width=DESKTOP_WIDTH,
            height=DESKTOP_HEIGHT,
            cookies=[cookie],
        )
        deadline = time.monotonic() + DRAW_TIMEOUT_S
        state = _wait_drawn(page, charts, deadline)
        # the whole dashboard in one picture: a viewport as high as the page, and the
        # charts drawn again at that size (a capture beyond the viewport catches them
        # blank, mid-redraw)
        page.resize(DESKTOP_WIDTH, max(DESKTOP_HEIGHT, int(state["height"])))
        time.sleep(1)
        state = _wait_drawn(page, charts, deadline)
        time.sleep(1.5)  # the charts' drawing animation
        page.viewport_screenshot(screenshot)
        markup = markup_problems(page) + tooltip_problems(page)
        page.viewport_screenshot(screenshot.with_name(f"{screenshot.stem}-tooltip.png"))
    problems = [f"the dashboard shows: {error}" for error in state["errors"]] + markup
    if state["drawn"] + state["failed"] < charts or state["loading"]:
        problems.append(
            f"the dashboard drew {state['drawn']} of {charts} charts in {DRAW_TIMEOUT_S:.0f} s"
            f" (page {state['path']}, {state['loading']} still loading)"
        )
    return problems
