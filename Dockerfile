# mediamon on the official Airflow image. The package is installed into the image with
# `pip install .` (never _PIP_ADDITIONAL_REQUIREMENTS); dags/, plugins/ and config/ are
# mounted by docker-compose.yml, so editing sources or topics needs no rebuild.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock pyproject.toml README.md /opt/mediamon/
# The pinned versions, without pgserver: the image always has a database server to use.
RUN grep -v '^pgserver==' /opt/mediamon/requirements.lock > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt
COPY --chown=airflow:root src /opt/mediamon/src
COPY --chown=airflow:root sql /opt/mediamon/sql
RUN cd /opt/mediamon && pip install --no-cache-dir --no-deps . \
 && mkdir -p /opt/airflow/auth
