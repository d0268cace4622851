"""Serving existing Roundup trackers: convert-schema + our daemon on real
Roundup 2.6.0 trackers of every template Roundup ships (classic, devel,
responsive, minimal, jinja2).

For each template, once per module:

1. ``roundup-admin install TEMPLATE sqlite`` + ``initialise`` (``postgresql``,
   in a database of the session's cluster, with ``--backend postgresql``;
   the reference copy then gets a clone of that database); data is added
   through Roundup's hyperdb API (users, one whose password contains ':',
   issues, messages with content, files, queries, retired items);
2. our ``convert-schema`` writes schema.toml; every template converts without
   --allow-unconverted (devel/responsive: nosyreaction on bug/task/milestone,
   no_texthtml on file; their web-only extensions are notes);
3. a copy of the tracker is made: Roundup's answers are computed on the copy,
   in-process, with ``roundup.xmlrpc.RoundupInstance`` (what the standalone
   server runs), ours by our daemon serving the original.

Tests:

* reads: every answer of a fixed call list (schema, list, display of every
  item, filter, lookup; as admin, a User and, where the role exists, a
  Developer) equals Roundup's, dates and Password structs masked (intended
  difference: our Password struct withholds the hash);
* writes: a fixed list of writes (create, set, retire, restore on every
  issue-like class, messages with content and nosy lists, file uploads among
  them a text/html one and a .patch, denied writes) runs through our daemon on
  the original and through RoundupInstance on the copy; afterwards Roundup's
  hyperdb reads the same items (nosy lists, message recipients and ids the
  detectors set, summaries, file types), file contents and journals from both
  (dates and message ids masked), and ``roundup-admin history`` / ``display``
  print the same;
* the database stays Roundup's: our daemon changes neither the ``schema`` row
  nor sqlite_master (on PostgreSQL: the schema dump), and Python Roundup opens
  and writes it afterwards without a schema migration.

Roundup's standalone server itself cannot authenticate a user whose password
contains ':' (``decoded.split(':')`` raises ValueError), which is one reason the
reference runs in-process. Roundup's jinja2 template needs the jinja2 package
(tests/requirements.txt) to be initialised; our convert-schema does not.
"""

import re
import shutil
import sqlite3
import subprocess
import os
import sys
import xmlrpc.client
from pathlib import Path

import pytest

from harness import (
    ADMIN_PASSWORD,
    REPO,
    OursTarget,
    Server,
    Tracker,
    backend,
    pg_cluster,
    set_config_option,
)

try:
    import roundup.instance as roundup_instance
except ImportError:
    if os.environ.get("RXS_REQUIRE_TOOLS"):
        raise
    pytest.skip("roundup 2.6.0 is not importable", allow_module_level=True)
import roundup.hyperdb  # noqa: E402
import roundup.i18n  # noqa: E402
import roundup.xmlrpc  # noqa: E402
from roundup.date import Date  # noqa: E402
from roundup.password import Password  # noqa: E402

CONVERT = REPO / "scripts" / "convert-schema.py"
TEMPLATES = ["classic", "devel", "responsive", "minimal", "jinja2", "devel-extras",
             "classic-multiassign"]


def _enable_devel_extras(home):
    """Register what the devel template's statusauditor.py, severityauditor.py
    and patches.py leave commented out, as a tracker would."""
    for name in ("statusauditor", "severityauditor", "patches"):
        path = home / "detectors" / (name + ".py")
        text = path.read_text().replace("def init(db): pass", "def init(db):")
        text = re.sub(r"(?m)^\s*#\s*(db\.\w+\.audit\()", r"    \1", text)
        path.write_text(text)


def _multilink_assignedto(home):
    """The classic schema with several assignees per issue."""
    path = home / "schema.py"
    path.write_text(path.read_text().replace('assignedto=Link("user")',
                                             'assignedto=Multilink("user")'))


# Trackers made from a template and then changed: name -> (template, change).
VARIANTS = {"devel-extras": ("devel", _enable_devel_extras),
            "classic-multiassign": ("classic", _multilink_assignedto)}
JOE_PASSWORD = "se:cret:pw"
DEV_PASSWORD = "dev"

# The [detectors] each template converts to: key -> the classes (None: `true`,
# Roundup's classic registration).
_CLASSIC = {"statusauditor": None, "nosyreaction": None, "messagesummary": None,
            "userauditor": None}
_DEVEL = {"nosyreaction": ["bug", "task", "milestone"], "messagesummary": None,
          "userauditor": None, "no_texthtml": None}
DETECTORS = {"classic": _CLASSIC, "jinja2": _CLASSIC, "minimal": {"userauditor": None},
             "devel": _DEVEL, "responsive": _DEVEL, "classic-multiassign": _CLASSIC,
             "devel-extras": dict(_DEVEL, preset_new=None, init_severity=None,
                                  patches_text_plain=None, patches_keyword=None)}
# Report notes each template must produce (prefixes).
_DEVEL_NOTES = [
    "extensions/local_replace.py:1: note: tracker extension (registerUtil "
    "'localReplace'): web templating and web actions only; not needed by the "
    "XML-RPC daemon",
    "extensions/spambayes.py:1: note: tracker extension (registerAction "
    "'spambayes_classify', registerUtil 'sb_is_spam'): web templating and web "
    "actions only",
    "extensions/timezone.py:1: note: tracker extension (registerUtil 'tzfield')",
    "detectors/patches.py:1: note: Roundup's devel template's detectors/patches.py "
    "registers nothing here; not needed",
    "detectors/statusauditor.py:1: note: Roundup's devel template's "
    "detectors/statusauditor.py registers nothing here",
    "detectors/severityauditor.py:1: note: Roundup's devel template's "
    "detectors/severityauditor.py registers nothing here",
]
NOTES = {"classic": [], "jinja2": [], "minimal": [], "devel": _DEVEL_NOTES,
         "responsive": _DEVEL_NOTES, "classic-multiassign": [],
         "devel-extras": _DEVEL_NOTES[:3]}

DATE = re.compile(r"<Date [^>]*>")


# --------------------------------------------------------------------------
# Roundup side


def roundup_admin(home, *args):
    exe = shutil.which("roundup-admin")
    cmd = ([exe] if exe else [sys.executable, "-m", "roundup.scripts.roundup_admin"])
    proc = subprocess.run(cmd + ["-i", str(home)] + list(args), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, "roundup-admin %s failed:\n%s%s" % (
        " ".join(args), proc.stdout, proc.stderr)
    return proc.stdout


def open_db(home, user="admin"):
    return roundup_instance.open(str(home)).open(user)


def issue_class(db):
    for cn in ("issue", "bug"):
        if cn in db.classes:
            return cn
    return None


def populate(home):
    """Users, files, messages, issues, queries and retired items, through the
    hyperdb API (as admin, and as joe where the creator matters)."""
    db = open_db(home)
    try:
        user_props = set(db.user.properties)
        joe = dict(username="joe", roles="User", address="joe@example.com",
                   password=Password(JOE_PASSWORD, config=db.config))
        if "realname" in user_props:
            joe["realname"] = "Joe Üser"
        joe = db.user.create(**joe)
        if "developer" in db.security.role:
            db.user.create(username="dev", roles="Developer",
                           address="dev@example.com",
                           password=Password(DEV_PASSWORD, config=db.config))
        gone = db.user.create(username="gone", roles="User",
                              address="gone@example.com")
        db.user.retire(gone)
        ic = issue_class(db)
        if ic is None:
            db.commit()
            return
        if "keyword" in db.classes:
            db.keyword.create(name="kw1")
            db.keyword.retire(db.keyword.create(name="kw2"))
        f1 = db.file.create(name="a.txt", type="text/plain", content="hello file\n")
        db.file.create(name="grüße.txt", type="text/plain", content="grüße ü\n")
        m1 = db.msg.create(content="First message\n\nMore text ü", author="1",
                           date=Date("2020-01-02.03:04:05"), files=[f1])
        cl = db.getclass(ic)
        props = dict(title="First issue", messages=[m1], files=[f1], nosy=[joe])
        for pn, prop in cl.properties.items():
            if pn in props or pn == "superseder":
                continue
            target = getattr(prop, "classname", None)
            if target == "user":
                props[pn] = joe if isinstance(prop, roundup.hyperdb.Link) else [joe]
            elif target and target != ic and db.getclass(target).list():
                first = db.getclass(target).list()[0]
                props[pn] = first if isinstance(prop, roundup.hyperdb.Link) else [first]
        cl.create(**props)                                       # issue1
        cl.retire(cl.create(title="Retired issue"))              # issue2
        db.commit()
    finally:
        db.close()
    # Items whose creator is joe (own-query checks).
    db = open_db(home, "joe")
    try:
        m2 = db.msg.create(content="Zweite Nachricht ü", author=joe,
                           date=Date("2020-03-04.05:06:07"))
        db.getclass(ic).create(title="Second issue by joe", messages=[m2])
        db.query.create(name="joe's", klass=ic, url="?@sort=id", private_for=joe)
        db.query.create(name="public", klass=ic, url="?@sort=-id")
        db.commit()
    finally:
        db.close()


def schema_state(home):
    tracker = Tracker(home)
    if tracker.backend == "postgresql":
        row = tracker.sql("select schema from schema")
        dump = subprocess.run(
            [os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin") + "/pg_dump",
             "--schema-only", "--no-owner", "-h", tracker.pg_host, "-U", "postgres",
             tracker.pg_name], capture_output=True, text=True, timeout=60, check=True)
        master = [line for line in dump.stdout.splitlines()
                  if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))]
        return row, master
    con = sqlite3.connect("file:%s?mode=ro" % (Path(home) / "db" / "db"), uri=True)
    try:
        row = con.execute("select schema from schema").fetchall()
        master = con.execute("select type, name, tbl_name, sql from sqlite_master "
                             "order by type, name").fetchall()
        return row, master
    finally:
        con.close()


def normalise(value):
    """Mask dates and Password structs, make Binary comparable."""
    if isinstance(value, str):
        return DATE.sub("<Date>", value)
    if isinstance(value, xmlrpc.client.Binary):
        return ("<Binary>", value.data)
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        if "scheme" in value:                      # a Password struct
            return "<Password>"
        return {k: normalise(v) for k, v in value.items()}
    return value


def over_the_wire(value):
    """What an XML-RPC client receives for a RoundupInstance result."""
    data = xmlrpc.client.dumps((roundup.xmlrpc.translate(value),),
                               methodresponse=True, allow_none=True)
    return xmlrpc.client.loads(data)[0][0]


def roundup_call(tracker, db, method, args):
    """One RoundupInstance call, answered as the standalone server answers
    (but with a translator, as Roundup's web /xmlrpc endpoint has: without one,
    a denied retire/restore is an AttributeError in the standalone server)."""
    translator = roundup.i18n.get_translation(tracker_home=tracker.tracker_home)
    instance = roundup.xmlrpc.RoundupInstance(db, tracker.actions, translator)
    try:
        return ("ok", normalise(over_the_wire(getattr(instance, method)(*args))))
    except Exception as e:      # SimpleXMLRPCDispatcher's fault format
        db.rollback()
        return ("fault", 1, DATE.sub("<Date>", "%s:%s" % (type(e), e)))


def unordered(answer):
    if answer[0] == "ok" and isinstance(answer[1], list):
        return ("ok", sorted(answer[1], key=repr))
    return answer


def ours_call(proxy, method, args):
    try:
        return ("ok", normalise(getattr(proxy, method)(*args)))
    except xmlrpc.client.Fault as f:
        return ("fault", f.faultCode, DATE.sub("<Date>", f.faultString))


# --------------------------------------------------------------------------
# Fixture: one converted tracker (and its reference copy) per template


class Site:
    def __init__(self, template, home, ref, users, report, first_state):
        self.unordered_lists = backend() == "postgresql"
        self.template = template
        self.home = home
        self.ref = ref
        self.users = users              # name -> password
        self.report = report
        self.first_state = first_state

    def server(self):
        return Server(OursTarget(), Tracker(self.home))


@pytest.fixture(scope="module", params=TEMPLATES)
def site(request, tmp_path_factory):
    template = request.param
    OursTarget().check()
    base = tmp_path_factory.mktemp("roundup-" + template)
    home = base / template
    settings = ("admin_email=admin@example.com,mail_domain=example.com,"
                "tracker_web=http://localhost:8917/%s/,mail_debug=%s,"
                "password_pbkdf2_default_rounds=1000"
                % (template, base / "mail-ours.log"))
    kind = backend()
    if kind == "postgresql":
        cluster = pg_cluster()
        db = cluster.new_name("rt_" + template + "_")
        settings += "," + ",".join("%s=%s" % kv for kv in cluster.settings(db).items()
                                   if kv[0] != "rdbms_backend")
    source, change = VARIANTS.get(template, (template, None))
    roundup_admin(home, "install", source, kind, settings)
    if change is not None:
        change(home)
    roundup_admin(home, "initialise", ADMIN_PASSWORD)
    populate(home)
    # Our convert-schema (the script, validated by our schema loader), without
    # --allow-unconverted: everything must convert.
    proc = subprocess.run([str(OursTarget().binary), "convert-schema", str(home)],
                          env=dict(os.environ, ROUNDUP_PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ref = base / (template + "-ref")
    shutil.copytree(home, ref)
    if kind == "postgresql":
        ref_db = cluster.new_name("rt_" + template + "_ref_")
        cluster.clone(Tracker(home).pg_name, ref_db)
        set_config_option(ref, "rdbms", "name", ref_db)
    config = ref / "config.ini"
    config.write_text(config.read_text().replace(
        str(base / "mail-ours.log"), str(base / "mail-roundup.log")))
    users = {"admin": ADMIN_PASSWORD, "joe": JOE_PASSWORD}
    if "Developer" in (home / "schema.toml").read_text():
        users["dev"] = DEV_PASSWORD
    return Site(template, home, ref, users, proc.stderr, schema_state(home))


# --------------------------------------------------------------------------
# Conversion


def test_conversion_report(site, tmp_path):
    """Nothing is left unconverted; the report has the expected notes; the
    script run on the reference copy writes the same schema.toml; [detectors]
    names the built-ins on the classes Roundup's template registers them on."""
    lines = site.report.splitlines()
    assert not [line for line in lines if ": not converted: " in line], site.report
    assert "0 item(s) not converted" in site.report, site.report
    missing = [n for n in NOTES[site.template]
               if not any(line.startswith(n) for line in lines)]
    assert not missing, "not reported: %s\n%s" % (missing, site.report)

    out = tmp_path / "schema.toml"
    proc = subprocess.run([sys.executable, str(CONVERT), str(site.ref), "--output",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (site.home / "schema.toml").read_text().replace(
        str(site.home), str(site.ref))

    import tomllib
    detectors = tomllib.loads((site.home / "schema.toml").read_text())["detectors"]
    got = {k: (v.get("classes") if isinstance(v, dict) else None)
           for k, v in detectors.items()}
    assert got == DETECTORS[site.template], detectors
    assert "python" not in detectors


@pytest.mark.parametrize("site", ["classic"], indirect=True)
def test_unconvertible_items_are_reported_and_left_out(site, tmp_path):
    """An unknown check function and a modified known one are reported with
    file:line; their grants are left out, never widened. A detector file that is
    not Roundup's goes to python = [...], a modified copy of a template detector
    too."""
    home = tmp_path / "custom"
    shutil.copytree(site.ref, home)
    with open(home / "schema.py", "a") as f:
        f.write(
            "\n\ndef is_open(db, userid, itemid):\n"
            "    return db.issue.get(itemid, 'status') != '8'\n"
            "\n\ndef own_record(db, userid, itemid):\n"
            "    return True\n"
            "\n\np = db.security.addPermission(name='Edit', klass='issue', "
            "check=is_open)\n"
            "db.security.addPermissionToRole('Anonymous', p)\n"
            "p = db.security.addPermission(name='View', klass='user', "
            "check=own_record)\n"
            "db.security.addPermissionToRole('Anonymous', p)\n")
    lines = (home / "schema.py").read_text().splitlines()
    is_open = lines.index("def is_open(db, userid, itemid):") + 1
    own = len(lines) - lines[::-1].index("def own_record(db, userid, itemid):")
    (home / "detectors" / "stamp.py").write_text(
        "def stamp(db, cl, nodeid, newvalues):\n    pass\n\n\n"
        "def init(db):\n    db.issue.audit('create', stamp)\n")
    summary = home / "detectors" / "messagesummary.py"
    summary.write_text(summary.read_text().replace(
        "newvalues['summary'] = summary", "newvalues['summary'] = summary.upper()"))
    out = tmp_path / "schema.toml"
    cmd = [sys.executable, str(CONVERT), str(home), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and not out.exists(), proc.stderr
    report = proc.stderr
    assert "schema.py:%d: not converted: permission 'Edit' on class 'issue' for role " \
        "Anonymous" % is_open in report, report
    assert "unknown check function 'is_open'" in report, report
    assert "schema.py:%d: not converted: permission 'View' on class 'user'" % own \
        in report, report
    assert "differs from Roundup's template version" in report, report
    assert "detectors/stamp.py:1: note: not one of Roundup's template detectors: " \
        "the daemon runs it as a Python detector (python = [...])" in report, report
    assert "detectors/messagesummary.py:1: note: not one of Roundup's template " \
        "detectors" in report, report
    assert "detectors: statusauditor, nosyreaction, userauditor; Python detectors: " \
        "detectors/messagesummary.py, detectors/stamp.py;" in report, report

    proc = subprocess.run(cmd + ["--allow-unconverted"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import tomllib
    grants = tomllib.loads(out.read_text())["grant"]
    anonymous = [(g["permission"], g.get("class")) for g in grants
                 if "Anonymous" in g["roles"]]
    assert ("Edit", "issue") not in anonymous
    assert ("View", "user") not in anonymous
    assert "NOT CONVERTED" in out.read_text()
    detectors = tomllib.loads(out.read_text())["detectors"]
    assert detectors["python"] == ["detectors/messagesummary.py", "detectors/stamp.py"]
    assert "messagesummary" not in detectors


# --------------------------------------------------------------------------
# Reads


def read_calls(db):
    """The fixed read call list for one tracker (derived from its classes)."""
    calls = [("schema", ())]
    ic = issue_class(db)
    joe = db.user.lookup("joe")
    for cn, cl in db.classes.items():
        calls.append(("list", (cn,)))
        calls.append(("filter", (cn, None, {})))
        calls.append(("filter", (cn, None, {}, [("-", "id")])))
        # Every item, retired ones included, and one that does not exist.
        last = max((int(i) for i in cl.getnodeids(retired=None)), default=0)
        for i in range(1, last + 2):
            calls.append(("display", ("%s%d" % (cn, i),)))
    calls += [
        ("list", ("user", "username")),
        ("lookup", ("user", "joe")),
        ("lookup", ("user", "gone")),
        ("lookup", ("user", "nosuch")),
        ("filter", ("user", None, {"username": "jo"})),
        ("filter", ("user", ["1", joe], {}, [("+", "username")])),
        ("display", ("user" + joe, "username", "roles")),
    ]
    if ic:
        calls += [
            ("list", (ic, "title")),
            ("filter", (ic, None, {"title": "first"})),
            ("filter", (ic, None, {"nosy": joe})),
            ("filter", (ic, None, {"messages": ["1", "2"]}, [("+", "title")])),
            ("filter", ("msg", None, {"date": "2020-01"})),
            ("display", ("msg1", "content", "summary", "author", "files")),
            ("display", ("file2", "content", "name", "type")),
            ("lookup", ("keyword", "kw1")) if "keyword" in db.classes else ("schema", ()),
            ("lookup", ("keyword", "kw2")) if "keyword" in db.classes else ("schema", ()),
        ]
    return calls


def test_reads_match_roundup(site):
    tracker = roundup_instance.open(str(site.ref))
    dbs = {u: tracker.open(u) for u in site.users}
    try:
        calls = read_calls(dbs["admin"])
        expected = {u: [roundup_call(tracker, dbs[u], m, a) for m, a in calls]
                    for u in site.users}
    finally:
        for db in dbs.values():
            db.close()
    with site.server() as srv:
        differences = []
        for user, password in site.users.items():
            proxy = srv.proxy(user, password)
            for (method, args), want in zip(calls, expected[user]):
                got = ours_call(proxy, method, args)
                if method == "list" and site.unordered_lists:
                    # Roundup-on-PostgreSQL's list has no ORDER BY (it comes back
                    # in whatever order the plan gives, e.g. by key); ours is in
                    # id order as on sqlite: the same items are compared.
                    got, want = unordered(got), unordered(want)
                if got != want:
                    differences.append("%s %s%r\n    roundup: %r\n    ours   : %r"
                                       % (user, method, args, want, got))
    assert schema_state(site.home) == site.first_state, \
        "our daemon changed the schema row or sqlite_master"
    n = len(calls) * len(site.users)
    assert not differences, "%d of %d answers differ:\n%s" % (
        len(differences), n, "\n".join(differences))


# --------------------------------------------------------------------------
# Writes


def write_calls(template, db):
    """(user, method, args) writes; "{rN}" is the result of write N."""
    ic = issue_class(db)
    if ic is None:
        return [
            ("admin", "create", ["user", "username=newbie", "password=x:y",
                                 "address=newbie@example.com", "roles=User"]),
            ("admin", "set", ["user{r0}", "address=changed@example.com"]),
            ("joe", "set", ["user{joe}", "alternate_addresses=joe2@example.com"]),
            ("joe", "set", ["user{joe}", "roles=Admin"]),             # denied
            ("joe", "set", ["user1", "address=x@example.com"]),       # denied
            ("admin", "action", ["retire", "user{r0}"]),
            ("admin", "action", ["restore", "user{r0}"]),
            ("admin", "action", ["restore", "user4"]),                # "gone"
            ("admin", "set", ["user{joe}", "address="]),              # userauditor
            ("admin", "set", ["user{joe}", "username="]),
        ]
    kw = "keyword" if ic == "issue" else "keywords"
    calls = [
        ("admin", "create", ["file", "name=w.txt", "type=text/plain",
                             "content=written through XML-RPC ü\n"]),
        ("admin", "create", ["msg", "content=Message via XML-RPC\n\nsecond para ü",
                             "author=1", "files={r0}", "date=2021-02-03.04:05:06"]),
        ("admin", "create", [ic, "title=Created via XML-RPC", "messages={r1}",
                             "files={r0}", "nosy=1,{joe}", kw + "=kw1"]),
        ("admin", "set", [ic + "{r2}", "title=Renamed via XML-RPC"]),
        ("admin", "set", [ic + "{r2}", "nosy=-{joe}"]),
        ("admin", "action", ["retire", ic + "1"]),
        ("admin", "action", ["restore", ic + "1"]),
        ("admin", "action", ["restore", "keyword2"]),
        ("joe", "set", ["user{joe}", "realname=Joe Changed", "phone=123"]),
        ("joe", "set", ["user{joe}", "roles=Admin"]),                 # denied
        ("joe", "display", ["user1"]),                                # denied
        ("joe", "create", ["msg", "content=joe's reply", "author={joe}"]),
        ("joe", "set", [ic + "{r2}", "messages=+{r11}"]),
        ("joe", "create", ["query", "name=mine", "klass=" + ic, "url=?x=1",
                           "private_for={joe}"]),
        ("joe", "action", ["retire", "query{r13}"]),
        ("joe", "action", ["restore", "query{r13}"]),
        ("joe", "set", ["query2", "name=not mine"]),                  # denied
    ]
    if ic == "bug":
        calls += [
            ("joe", "create", ["bug", "title=joe's bug", "severity=1", "nosy={joe}"]),
            ("joe", "create", ["bug", "title=x", "priority=1"]),       # denied
            ("joe", "set", ["file1", "name=renamed.txt"]),             # denied: check
            ("joe", "create", ["file", "name=j.txt", "content=joe's file"]),
            ("joe", "set", ["file{r20}", "name=joe-renamed.txt"]),    # own file
            ("dev", "create", ["task", "title=dev task", "nosy={dev}"]),
            ("dev", "set", ["task{r22}", "title=dev task 2"]),
        ]
    calls += [("admin", "set", ["user{joe}", "address="]),            # userauditor
              ("admin", "set", ["user{joe}", "username="])]
    if "assignedto" in db.getclass(ic).properties:
        # updatenosy adds the assignee(s), a Link or a Multilink.
        calls += [("admin", "create", [ic, "title=assigned", "assignedto={joe}"])]
    n = len(calls)
    r = lambda k: "{r%d}" % (n + k)                                   # noqa: E731
    calls += [
        # Uploads: text/html (no_texthtml where registered), a patch.
        ("admin", "create", ["file", "name=page.html", "type=text/html",
                             "content=<p>html</p>"]),                # n
        ("admin", "create", ["file", "name=fix.patch",
                             "content=--- a\n+++ b\n"]),             # n+1
        ("admin", "set", ["file" + r(1), "type=text/html"]),
        # A summary from a section mixing quotes and a reply ([mailgw]
        # keep_quoted_text = yes by default).
        ("admin", "create", ["msg", "content=> quoted\nreply line. more",
                             "author={joe}"]),                        # n+3
        # No nosy given: the author of the first message joins it.
        ("admin", "create", [ic, "title=with patch", "files=" + r(1),
                             "messages=" + r(3)]),                    # n+4
        ("admin", "set", [ic + r(4), "files=+" + r(0)]),
        ("admin", "create", ["msg", "content=Another one!", "author=1"]),  # n+6
        # A new message mailed to the nosy list: recipients, message id.
        ("admin", "set", [ic + r(4), "messages=+" + r(6)]),
        ("joe", "create", ["msg", "content=joe again", "author={joe}"]),  # n+8
        ("joe", "set", [ic + r(4), "messages=+" + r(8), "nosy=+1"]),
    ]
    for cls in ("task", "milestone"):
        if cls not in db.classes:
            continue
        k = len(calls) - n
        calls += [
            ("admin", "create", ["msg", "content=about a %s." % cls,
                                 "author={dev}"]),                     # k
            ("admin", "create", [cls, "title=%s with a message" % cls,
                                 "messages=" + r(k)]),                 # k+1
            ("admin", "create", ["msg", "content=more on it", "author={joe}"]),
            ("admin", "set", [cls + r(k + 1), "messages=+" + r(k + 2),
                              "nosy=+{joe}"]),
        ]
    statuses = ([db.status.get(i, "name") for i in db.status.list()]
                if "status" in db.classes else [])
    if "chatting" in statuses:
        # statusauditor's chatty without any of unread/resolved/done-cbb:
        # Roundup fails the set (list index out of range).
        calls += [("admin", "action", ["retire", "status" + db.status.lookup(x)])
                  for x in ("unread", "resolved", "done-cbb")]
        k = len(calls) - n
        calls += [
            ("admin", "create", ["msg", "content=last", "author=1"]),  # k
            ("admin", "set", [ic + r(4), "messages=+" + r(k)]),
        ]
    return calls


def run_writes(calls, call, ids):
    """Run the writes, substituting earlier results ("{rN}") and user ids
    ("{joe}", "{dev}"); return the answers."""
    results = []
    answers = []
    for user, method, args in calls:
        subst = {"r%d" % i: r for i, r in enumerate(results)}
        subst.update(ids)
        args = [a.format(**subst) if isinstance(a, str) else a for a in args]
        answer = call(user, method, args)
        answers.append(answer)
        results.append(answer[1] if answer[0] == "ok" and isinstance(answer[1], str)
                       else "")
    return answers


def snapshot(home):
    """Everything Roundup's hyperdb reads from the tracker: every item's values,
    file contents and journal, dates masked, passwords as verified/not."""
    db = open_db(home)
    try:
        out = {}
        for cn, cl in db.classes.items():
            for itemid in cl.getnodeids():
                values = {}
                for pn, prop in cl.getprops().items():
                    v = cl.get(itemid, pn)
                    if isinstance(prop, roundup.hyperdb.Password):
                        v = None if v is None else (
                            "<Password>", v == JOE_PASSWORD, v == "x:y")
                    if pn in ("creation", "activity"):
                        v = "<Date>"
                    elif pn == "messageid" and v:
                        v = "<random message id>"
                    values[pn] = DATE.sub("<Date>", repr(v))
                values["__retired__"] = cl.is_retired(itemid)
                try:
                    history = [(h[0], h[2], h[3], DATE.sub("<Date>", repr(h[4])))
                               for h in cl.history(itemid)]
                except ValueError as e:     # params Roundup cannot parse
                    history = ["<unreadable journal: %s>" % e]
                out["%s%s" % (cn, itemid)] = (values, history)
        return out
    finally:
        db.close()


def test_writes_read_by_roundup(site):
    db = open_db(site.ref)
    try:
        calls = write_calls(site.template, db)
        ids = {u: db.user.lookup(u) for u in site.users}
    finally:
        db.close()

    tracker = roundup_instance.open(str(site.ref))

    def reference(user, method, args):
        db = tracker.open(user)
        try:
            return roundup_call(tracker, db, method, args)
        finally:
            db.close()

    want = run_writes(calls, reference, ids)
    with site.server() as srv:
        proxies = {u: srv.proxy(u, p) for u, p in site.users.items()}
        got = run_writes(calls, lambda u, m, a: ours_call(proxies[u], m, a), ids)
    diffs = ["#%d %s %s%r\n    roundup: %r\n    ours   : %r" % (i, c[0], c[1], c[2], w, g)
             for i, (c, w, g) in enumerate(zip(calls, want, got)) if w != g]
    assert not diffs, "write answers differ:\n" + "\n".join(diffs)
    assert schema_state(site.home) == site.first_state, \
        "our daemon changed the schema row or sqlite_master"

    # Roundup's hyperdb reads the same items, contents and journals.
    ours, theirs = snapshot(site.home), snapshot(site.ref)
    diffs = []
    for designator in sorted(set(ours) | set(theirs)):
        a, b = theirs.get(designator), ours.get(designator)
        if a != b:
            diffs.append("%s\n    roundup: %r\n    ours   : %r" % (designator, a, b))
    assert not diffs, "hyperdb reads differ:\n" + "\n".join(diffs)

    # roundup-admin prints the same history and values (one interactive
    # session per tracker).
    designators = ["user" + ids["joe"]] + [
        "%s%s" % (a[0], r[1]) for (u, m, a), r in zip(calls, got)
        if m == "create" and r[0] == "ok"]
    commands = ["%s %s" % (c, d) for d in designators for c in ("history", "display")]
    mine = admin_session(site.home, commands)
    ref = admin_session(site.ref, commands)
    for command, a, b in zip(commands, ref, mine):
        assert norm_admin(b) == norm_admin(a), \
            "roundup-admin %s:\nroundup: %s\nours   : %s" % (command, a, b)
        if command.startswith("history"):
            assert " create " in b, b

    # Python Roundup opens the database and writes to it without migrating.
    db = open_db(site.home)
    try:
        db.user.create(username="after", address="after@example.com", roles="User")
        db.commit()
    finally:
        db.close()
    assert schema_state(site.home) == site.first_state, \
        "Roundup migrated the schema after our daemon wrote to the database"


def admin_session(home, commands):
    """Run roundup-admin commands in one interactive session; their outputs."""
    exe = shutil.which("roundup-admin")
    cmd = ([exe] if exe else [sys.executable, "-m", "roundup.scripts.roundup_admin"])
    proc = subprocess.run(cmd + ["-i", str(home)], input="\n".join(commands) + "\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    parts = proc.stdout.split("roundup> ")[1:len(commands) + 1]
    assert len(parts) == len(commands), proc.stdout
    return parts


DATE_TEXT = re.compile(r"\d{4}-\d\d-\d\d[.\s]\d\d:\d\d:\d\d(\.\d+)?")
PASSWORD_TEXT = re.compile(r"\{PBKDF2S5\}[^\s']+")


MESSAGEID_TEXT = re.compile(r"<[^<>@\s]+@[^<>\s]+>")


def norm_admin(text):
    """roundup-admin output with dates, password hashes and message ids masked."""
    text = PASSWORD_TEXT.sub("<Password>", DATE_TEXT.sub("<Date>", text))
    return MESSAGEID_TEXT.sub("<message id>", text)
