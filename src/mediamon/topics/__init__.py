"""Tracked topics: the rule language (``rules``), the topic model (``definitions``), the
YAML file (``file``), their stored versions (``store``) and matching articles (``match``)."""
