"""The ``bi`` schema is a contract with the analysts' dashboards (README, "BI views"):
columns are added, never silently renamed, dropped or given another type, and a change
of meaning gets a new view. ``bi_contract.txt`` is that contract, written down: every
relation's columns with their types, in order, and every function's signature. A
migration that breaks a line fails here; one that adds a column or a view fails until
the line is added, so every change to what dashboards read is made on purpose."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

CONTRACT = Path(__file__).with_name("bi_contract.txt")

COLUMNS = (
    "select format('bi.%s.%s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod))"
    " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
    " join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
    " where n.nspname = 'bi' and c.relkind in ('v', 'r', 'm')"
    " order by c.relname, a.attnum"
)
FUNCTIONS = (
    "select format('bi.%s(%s) returns %s', p.proname,"
    " pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid))"
    " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
    " where n.nspname = 'bi' order by 1"
)


def schema_lines(engine: sa.Engine) -> list[str]:
    """The ``bi`` schema as the contract file writes it."""
    with engine.connect() as conn:
        columns = conn.execute(sa.text(COLUMNS)).scalars().all()
        functions = conn.execute(sa.text(FUNCTIONS)).scalars().all()
    return [*columns, *(f"function {line}" for line in functions)]


def contract_lines() -> list[str]:
    lines = CONTRACT.read_text("utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_the_bi_schema_keeps_its_contract(engine: sa.Engine) -> None:
    schema = schema_lines(engine)
    promised = contract_lines()
    broken = [line for line in promised if line not in schema]
    assert not broken, (
        "bi columns or functions renamed, dropped or given another type (dashboards"
        " read them; add a new view or column instead):\n  " + "\n  ".join(broken)
    )
    added = [line for line in schema if line not in promised]
    assert not added, (
        f"new in the bi schema: add these lines to {CONTRACT.name} (and document them in"
        " the README's BI table and a comment):\n" + "\n".join(added)
    )


def test_columns_keep_their_order(engine: sa.Engine) -> None:
    """``select *`` in a saved query reads columns by position: a view keeps the order
    of the columns it promised (new ones come after)."""
    schema = schema_lines(engine)
    promised = contract_lines()
    assert [line for line in schema if line in promised] == promised
