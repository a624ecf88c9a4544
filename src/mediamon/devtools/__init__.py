"""Tools for running mediamon locally: the offline demo and its history, the sample-site
server and the local Airflow environment. The demo's data ships as package data."""
