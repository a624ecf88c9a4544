"""The mediamon page in Airflow's UI: the app of ``mediamon.bi.webapp`` served by the
api-server at ``/mediamon/`` behind Airflow's own login, and a "mediamon" entry in the
navigation that shows it inside the UI; and the mails' unsubscribe page at
``/mediamon-unsubscribe/`` (``mediamon.bi.unsubscribe_page``; the recipient's list of
their alerts at ``alerts`` under it), open to anyone. Wiring
only; the pages live in ``mediamon.bi``."""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends

from mediamon.bi.header_timeout import bound_header_time
from mediamon.bi.unsubscribe_page import keys_from_env, make_unsubscribe_app
from mediamon.bi.webapp import make_app
from mediamon_airflow import api_server_engine

# The api-server's uvicorn has no limit on the time a request's headers take: a slowloris
# client holds connections for as long as it likes (mediamon.bi.header_timeout).
bound_header_time()

# A mounted app inherits none of the core API's auth: require what the UI requires (a
# valid Airflow token, from the UI's cookie or a Bearer header, and the right to see it).
app = make_app(api_server_engine, dependencies=[Depends(requires_access_view(AccessView.WEBSITE))])

# The unsubscribe page has no login on purpose: the signed token in its address is the
# authority (mediamon.alerts.unsubscribe), and recipients and Gmail have no Airflow login.
unsubscribe_app = make_unsubscribe_app(api_server_engine, keys_from_env)


class MediamonDashboardPlugin(AirflowPlugin):
    name = "mediamon_dashboard"
    fastapi_apps = [
        {"app": app, "url_prefix": "/mediamon", "name": "mediamon page"},
        {
            "app": unsubscribe_app,
            "url_prefix": "/mediamon-unsubscribe",
            "name": "mediamon unsubscribe page",
        },
    ]
    external_views = [
        {"name": "mediamon", "href": "/mediamon/", "url_route": "mediamon", "destination": "nav"}
    ]
