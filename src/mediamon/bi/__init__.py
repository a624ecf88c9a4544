"""Business intelligence: the settings the ``bi`` views read, BI logins, and the dashboard
page the Airflow plugin serves. Never imports Airflow."""
