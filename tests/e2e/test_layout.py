"""Our `init` reproduces Roundup's classic tracker database exactly.

Compares a tracker made by ``roundup-xmlrpc-server init`` with one made by
``roundup-admin install classic sqlite`` + ``initialise``: every table, index and
column (sqlite_master), the stored schema row, the ``ids`` rows and the initial
rows of every class, with timestamps and password hashes masked. Also checks
that Python Roundup opens our database without migrating it and verifies the
admin password we hashed.
"""

import re
import shutil
import sqlite3
import subprocess
import sys

import pytest

from harness import ADMIN_PASSWORD, OursTarget, RoundupTarget, missing_tool

CLASSES = ["priority", "status", "keyword", "query", "user", "msg", "file", "issue"]
DATE = re.compile(r"^\d{14}\.\d{3}$")


def norm_sql(sql):
    return re.sub(r"\s+", " ", sql or "").strip().lower()


def master(db):
    con = sqlite3.connect(db)
    try:
        return {(t, n): norm_sql(s) for t, n, s in
                con.execute("select type, name, sql from sqlite_master")}
    finally:
        con.close()


def rows(db, query):
    con = sqlite3.connect(db)
    try:
        out = []
        for row in con.execute(query):
            masked = []
            for v in row:
                if isinstance(v, str) and DATE.match(v):
                    v = "<date>"
                elif isinstance(v, str) and v.startswith("{PBKDF2S5}"):
                    v = "{PBKDF2S5}<hash>"
                masked.append(v)
            out.append(tuple(masked))
        return out
    finally:
        con.close()


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
    assert master(ours.db_path) == master(theirs.db_path)


def test_same_schema_row(pair):
    ours, theirs = pair
    q = "select schema from schema"
    assert rows(ours.db_path, q) == rows(theirs.db_path, q)


def test_same_ids(pair):
    ours, theirs = pair
    q = "select name, num from ids order by name"
    assert rows(ours.db_path, q) == rows(theirs.db_path, q)


@pytest.mark.parametrize("cls", CLASSES)
def test_same_initial_rows_and_journal(pair, cls):
    ours, theirs = pair
    for q in ["select * from _%s order by id" % cls,
              "select nodeid, date, tag, action, params from %s__journal "
              "order by nodeid, action" % cls]:
        assert rows(ours.db_path, q) == rows(theirs.db_path, q), q


def test_roundup_opens_our_database_without_migrating(pair, tmp_path):
    # Python Roundup needs its schema.py: use its classic tracker home with our db/.
    ours, theirs = pair
    mixed = tmp_path / "mixed"
    shutil.copytree(theirs.home, mixed)
    shutil.rmtree(mixed / "db")
    shutil.copytree(ours.home / "db", mixed / "db")
    db = mixed / "db" / "db"
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
