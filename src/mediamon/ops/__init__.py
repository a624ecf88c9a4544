"""Operations: how ingest runs went (``runs``), data-quality checks on their articles
(``quality``), the watchdog and its incidents (``health``), the weekly source-health
report (``report``), the ops mails (``mail``), and the functions the CLI and the Airflow
tasks share (``service``)."""
