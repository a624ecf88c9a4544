"""mediamon: media monitoring for Chinese-language (and other) news.

The package holds all logic and never imports Airflow; the DAGs in ``dags/`` only wire
its functions into tasks.
"""

__version__ = "0.1.0"
