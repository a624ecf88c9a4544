# mediamon on the official Airflow image: the package installed into the image as a plain
# wheel (never editable, never _PIP_ADDITIONAL_REQUIREMENTS); its SQL, default config and
# demo data are package data. The DAG files go to Airflow's DAGs folder, the plugin (the
# mediamon page) to its plugins folder.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock pyproject.toml README.md /opt/mediamon/
COPY --chown=airflow:root src /opt/mediamon/src
RUN pip install --no-cache-dir -r /opt/mediamon/requirements.lock \
 && pip install --no-cache-dir --no-deps /opt/mediamon
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
