"""Alert mail and digests: what a mail says (``compose``, with ``catalog`` for the words
and times in each locale, ``chart``, ``snippet``; ``render`` escapes and builds the MIME
message), what it shows from the database (``content``), delivery of pending alerts
(``deliver``) and of digests (``digest``), and the SMTP connection (``smtp``)."""
