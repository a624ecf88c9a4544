-- BI logins get a statement timeout, an idle-in-transaction timeout and more work_mem
-- (roles.BI_LOGIN_DEFAULTS says why and how much; docs/topics.md, "BI logins"). Before,
-- only mediamon's own page limited its statements (30 s, set in its transaction): a
-- runaway query from Superset or psql held its backend and its locks until someone killed
-- it, and a year's group-by over bi.articles spilled 63 MB to disk at the default
-- work_mem. As 0023 did for jit: a setting on mediamon_bi reaches no one (PostgreSQL
-- applies a role's settings only when that role logs in), so each login gets them;
-- `mediamon db bi-user` and `mediamon db roles` set them on the logins they make, this on
-- the logins made before. A login that already has one of them keeps it (an administrator
-- chose it), as do superusers. A login that cannot be altered (no right to, dropped or
-- altered meanwhile by another database's tools: roles belong to the whole server) gets a
-- warning and the migration still applies. (No percent sign: the migration runner's
-- driver would read it as a placeholder.)
do $$
declare
    login name;
    setting_name text;
    setting_value text;
begin
    for login, setting_name, setting_value in
        select r.rolname, d.name, d.value
        from pg_roles r
        join pg_auth_members m on m.member = r.oid
        join pg_roles b on b.oid = m.roleid and b.rolname = 'mediamon_bi'
        cross join (values ('statement_timeout', '60s'),
                           ('idle_in_transaction_session_timeout', '5min'),
                           ('work_mem', '64MB')) as d (name, value)
        where r.rolcanlogin and not r.rolsuper
          and not exists (select from unnest(r.rolconfig) c
                          where split_part(c, '=', 1) = d.name)
        order by 1, 2
    loop
        begin
            execute 'alter role ' || quote_ident(login) || ' set ' || setting_name || ' = '
                || quote_literal(setting_value);
        exception when others then
            raise warning using message = 'cannot set ' || setting_name || ' = '
                || setting_value || ' for BI login ' || login || ' (' || sqlerrm
                || '): run `alter role ' || quote_ident(login) || ' set ' || setting_name
                || ' = ' || quote_literal(setting_value) || '` as an administrator'
                || ' (docs/topics.md, BI logins)';
        end;
    end loop;
end
$$;
