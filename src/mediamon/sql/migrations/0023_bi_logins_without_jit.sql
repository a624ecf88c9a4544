-- BI logins run without JIT. A dashboard's whole series (bi.topic_daily for every topic,
-- read from the roll-up of 0022) is estimated above jit_above_cost, and JIT spent about a
-- second compiling a query that runs in a fraction of that. A view cannot turn JIT off,
-- and a setting on mediamon_bi reaches no one: PostgreSQL applies a role's settings only
-- when that role logs in, and mediamon_bi has no login. So the setting goes on each login:
-- `mediamon db bi-user` and `mediamon db roles` set it on the logins they make
-- (roles.BI_LOGIN_SETTINGS); this gives it to the logins made before. A login that
-- already has a jit setting keeps it (an administrator chose it), as do superusers.
-- Roles belong to the whole server, where other databases' migrations and tools may alter
-- or drop the same logins meanwhile: a login that cannot be altered (no right to, dropped,
-- altered concurrently) gets a warning and the migration still applies. (No percent sign:
-- the migration runner's driver would read it as a placeholder.)
do $$
declare
    login name;
begin
    for login in
        select r.rolname
        from pg_roles r
        join pg_auth_members m on m.member = r.oid
        join pg_roles b on b.oid = m.roleid and b.rolname = 'mediamon_bi'
        where r.rolcanlogin and not r.rolsuper
          and not exists (select from unnest(r.rolconfig) c where split_part(c, '=', 1) = 'jit')
        order by 1
    loop
        begin
            execute 'alter role ' || quote_ident(login) || ' set jit = off';
        exception when others then
            raise warning using message = 'cannot set jit = off for BI login ' || login
                || ' (' || sqlerrm || '): run `alter role ' || quote_ident(login)
                || ' set jit = off` as an administrator (docs/topics.md, BI)';
        end;
    end loop;
end
$$;
