"""Alert mail: rendering (``render``), delivery of pending alerts and digests
(``deliver``) and the SMTP connection (``smtp``)."""
