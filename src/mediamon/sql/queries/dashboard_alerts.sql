-- The page's alerts: the latest episodes, newest first.
select alert_id, topic, topic_name, window_start, window_end, window_start_local,
       window_end_local, observed, expected, lift, score, p_value, state, mails_sent,
       digest_mails_sent
from bi.alerts
order by window_end desc, alert_id desc
limit :limit
