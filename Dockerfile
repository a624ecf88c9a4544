# mediamon on the official Airflow image. The package is installed into the image as a
# plain wheel with `pip install .` (never editable, never _PIP_ADDITIONAL_REQUIREMENTS);
# its SQL and default config are package data. dags/, plugins/ (the mediamon page) and
# config/ are mounted by docker-compose.yml, so editing sources or topics needs no rebuild.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock pyproject.toml README.md /opt/mediamon/
# The pinned versions, without pgserver: the image always has a database server to use.
RUN grep -v '^pgserver==' /opt/mediamon/requirements.lock > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt
COPY --chown=airflow:root src /opt/mediamon/src
RUN cd /opt/mediamon && pip install --no-cache-dir --no-deps . \
 && mkdir -p /opt/airflow/auth
