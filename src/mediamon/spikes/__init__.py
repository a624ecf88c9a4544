"""Spike detection: the count model's maths (``model``), hourly counts from the database
(``counts``), the one episode/cooldown rule (``episodes``) and detection (``detect``)."""
