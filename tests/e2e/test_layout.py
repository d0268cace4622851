"""Our `init` reproduces Roundup's classic tracker database exactly.

Compares a tracker made by ``roundup-xmlrpc-server init`` with one made by
``roundup-admin install classic sqlite`` + ``initialise`` (``postgresql`` with
``--backend postgresql``): every table, index and column (sqlite_master; on
PostgreSQL the whole ``pg_dump --schema-only``: tables, sequences, indexes,
types), the stored schema row, the next ids (the ``ids`` rows; the
``_<class>_ids`` sequences) and the initial rows of every class, with timestamps
and password hashes masked. Also checks that Python Roundup opens our database
without migrating it and verifies the admin password we hashed.
"""

import datetime
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest

from harness import (
    ADMIN_PASSWORD,
    OursTarget,
    RoundupTarget,
    missing_tool,
    set_config_option,
)

CLASSES = ["priority", "status", "keyword", "query", "user", "msg", "file", "issue"]
DATE = re.compile(r"^\d{14}\.\d{3}$")
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


def norm_sql(sql):
    return re.sub(r"\s+", " ", sql or "").strip().lower()


def master(tracker):
    """The database's definitions: sqlite_master, or PostgreSQL's schema dump
    (without ownership and the dump's random ``\\restrict`` key)."""
    if tracker.backend == "postgresql":
        out = subprocess.run(
            [PG_BIN + "/pg_dump", "--schema-only", "--no-owner", "-h", tracker.pg_host,
             "-U", "postgres", tracker.pg_name],
            capture_output=True, text=True, timeout=60, check=True).stdout
        return [line for line in out.splitlines()
                if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))]
    con = sqlite3.connect(tracker.db_path)
    try:
        return {(t, n): norm_sql(s) for t, n, s in
                con.execute("select type, name, sql from sqlite_master")}
    finally:
        con.close()


def mask(v):
    if isinstance(v, str) and DATE.match(v):
        return "<date>"
    if isinstance(v, datetime.datetime):
        return "<date>"
    if isinstance(v, str) and v.startswith("{PBKDF2S5}"):
        return "{PBKDF2S5}<hash>"
    return v


def rows(tracker, query):
    return [tuple(mask(v) for v in row) for row in tracker.sql(query)]


def next_ids(tracker):
    if tracker.backend != "postgresql":
        return rows(tracker, "select name, num from ids order by name")
    out = [("__textids", tracker.sql("select last_value + is_called::int from ___textids_ids")[0][0])]
    for cls in sorted(CLASSES):
        ((n,),) = tracker.sql("select last_value + is_called::int from _%s_ids" % cls)
        out.append((cls, n))
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    if not RoundupTarget.available():
        missing_tool("roundup 2.6.0 is not importable")
    ours = OursTarget().make_tracker(tmp_path_factory.mktemp("ours") / "demo")
    theirs = RoundupTarget(tmp_path_factory.mktemp("cache")).make_tracker(
        tmp_path_factory.mktemp("roundup") / "demo")
    return ours, theirs


def test_same_tables_indexes_and_columns(pair):
    ours, theirs = pair
    assert master(ours) == master(theirs)


def test_same_schema_row(pair):
    ours, theirs = pair
    q = "select schema from schema"
    assert rows(ours, q) == rows(theirs, q)


def test_same_ids(pair):
    ours, theirs = pair
    assert next_ids(ours) == next_ids(theirs)


@pytest.mark.parametrize("cls", CLASSES)
def test_same_initial_rows_and_journal(pair, cls):
    ours, theirs = pair
    for q in ["select * from _%s order by id" % cls,
              "select nodeid, date, tag, action, params from %s__journal "
              "order by nodeid, action" % cls]:
        assert rows(ours, q) == rows(theirs, q), q


def test_roundup_opens_our_database_without_migrating(pair, tmp_path):
    # Python Roundup needs its schema.py: use its classic tracker home with our
    # db/ (sqlite), or pointed at our database (PostgreSQL).
    ours, theirs = pair
    mixed = tmp_path / "mixed"
    shutil.copytree(theirs.home, mixed)
    shutil.rmtree(mixed / "db")
    shutil.copytree(ours.home / "db", mixed / "db")
    if ours.backend == "postgresql":
        set_config_option(mixed, "rdbms", "name", ours.pg_name)
    from harness import Tracker
    db = Tracker(mixed)
    before = master(db), rows(db, "select schema from schema")
    script = (
        "import sys, roundup.instance\n"
        "t = roundup.instance.open(sys.argv[1])\n"
        "db = t.open('admin')\n"
        "print(db.user.get('1', 'username'), db.user.get('1', 'password') == sys.argv[2])\n"
        "db.keyword.create(name='from-python')\n"
        "db.commit(); db.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(mixed), ADMIN_PASSWORD],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["admin", "True"]
    after = master(db), rows(db, "select schema from schema")
    assert before == after
    assert rows(db, "select _name from _keyword") == [("from-python",)]
