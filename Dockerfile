# mediamon on the official Airflow image: the package installed into the image (never
# _PIP_ADDITIONAL_REQUIREMENTS), DAGs and SQL copied beside it.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock pyproject.toml README.md /opt/mediamon/
COPY --chown=airflow:root src /opt/mediamon/src
COPY --chown=airflow:root sql /opt/mediamon/sql
COPY --chown=airflow:root config /opt/mediamon/config
RUN pip install --no-cache-dir -r /opt/mediamon/requirements.lock \
 && pip install --no-cache-dir --no-deps -e /opt/mediamon
COPY --chown=airflow:root dags /opt/airflow/dags
