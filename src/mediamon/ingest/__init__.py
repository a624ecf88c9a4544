"""Ingest stage: plan which sources are due (``plan``), then per source fetch, decode,
extract, normalize and load its articles (``run``, built on the modules beside it)."""
