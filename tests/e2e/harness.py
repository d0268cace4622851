"""Helpers shared by the end-to-end tests: targets, trackers, servers, faults.

Two *targets* can be driven by the same tests:

* ``ours``    -- the Rust ``roundup-xmlrpc-server`` binary (env ``RXS_BIN``,
                 default ``<repo>/target/debug/roundup-xmlrpc-server``);
* ``roundup`` -- Roundup 2.6.0's real standalone XML-RPC server, started by
                 ``scripts/roundup-reference-server`` on a tracker made with
                 ``roundup-admin install classic sqlite`` + ``initialise``.

Both serve a tracker whose directory is called ``demo`` so that the endpoint
``http://127.0.0.1:PORT/demo/xmlrpc`` is the same for both.

Two *backends* for the trackers (``--backend`` / ``E2E_BACKEND``, see
conftest.py): ``sqlite`` (``db/db``) or ``postgresql``: a private cluster
started once per session by ``scripts/pg-cluster`` (initdb into a temporary
directory, Unix socket only), one database per tracker, cloned from a template
database that ``init`` (ours) or ``roundup-admin install`` + ``initialise``
(Roundup) made once.
"""

import atexit
import base64
import configparser
import itertools
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import xmlrpc.client
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PG_CLUSTER = REPO / "scripts" / "pg-cluster"
REFERENCE_SERVER = REPO / "scripts" / "roundup-reference-server"
DEFAULT_BIN = REPO / "target" / "debug" / "roundup-xmlrpc-server"

ADMIN_PASSWORD = "sekrit"
TRACKER_NAME = "demo"
READY_RE = re.compile(r"^listening on (http://127\.0\.0\.1:(\d+))/\s*$")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# Prefixes of Roundup fault strings.
USAGE = "<class 'roundup.exceptions.UsageError'>:"
UNAUTH = "<class 'roundup.exceptions.Unauthorised'>:"


def tracker_settings(home):
    """The ``--set`` values of our ``init`` (= Roundup config options)."""
    return {
        "admin_email": "admin@example.com",
        "mail_domain": "example.com",
        "mail_debug": str(Path(home) / "mail.log"),
        "tracker_web": "http://localhost:8917/demo/",
    }


def missing_tool(reason):
    """A test cannot run because the machine lacks a tool (Roundup, nginx, ...):
    skipped on a developer's machine, a failure where ``RXS_REQUIRE_TOOLS`` is
    set (CI sets it, so no test passes there by skipping)."""
    __tracebackhide__ = True
    if os.environ.get("RXS_REQUIRE_TOOLS"):
        pytest.fail("required tool missing (RXS_REQUIRE_TOOLS is set): " + reason,
                    pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------
# Backends


def backend():
    """The trackers' backend of this run: ``sqlite`` or ``postgresql``."""
    return os.environ.get("E2E_BACKEND") or "sqlite"


class PgCluster:
    """A private PostgreSQL cluster (``scripts/pg-cluster run``): stopped and
    deleted when this process exits, even when it is killed (the script waits
    for its stdin to close)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.proc = subprocess.Popen([str(PG_CLUSTER), "run", str(self.dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = _readline_with_timeout(self.proc, 120)
        if not line or not line.startswith(b"ready "):
            self.proc.kill()
            missing_tool("scripts/pg-cluster could not start PostgreSQL (is "
                         "/usr/lib/postgresql/15/bin there? PG_BIN): %r" % line)
        atexit.register(self.close)
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def connect(self, dbname="postgres"):
        """A superuser connection (autocommit)."""
        import psycopg2
        con = psycopg2.connect(host=str(self.dir), user="postgres", dbname=dbname)
        con.autocommit = True
        return con

    def new_name(self, prefix="t"):
        with self._lock:
            return "%s%d" % (prefix, next(self._names))

    def clone(self, template, name):
        """CREATE DATABASE name TEMPLATE template (owned by the tracker role)."""
        con = self.connect()
        try:
            for attempt in range(100):
                try:
                    con.cursor().execute('CREATE DATABASE "%s" TEMPLATE "%s" OWNER rxs'
                                         % (name, template))
                    return
                except Exception as e:  # the template is briefly in use
                    if "being accessed by other users" not in str(e) or attempt == 99:
                        raise
                    time.sleep(0.1)
        finally:
            con.close()

    def stop(self, mode="fast"):
        """Stops the server: ``fast`` terminates the sessions, ``immediate`` is
        a crash (recovery from the WAL at the next start)."""
        subprocess.run([str(PG_CLUSTER), "stop", str(self.dir), mode], check=True,
                       timeout=120)

    def start(self):
        subprocess.run([str(PG_CLUSTER), "start", str(self.dir)], check=True, timeout=120)

    def settings(self, dbname):
        """``--set`` values of our ``init`` for a tracker in database ``dbname``."""
        return {"rdbms_backend": "postgresql", "rdbms_host": str(self.dir),
                "rdbms_user": "rxs", "rdbms_password": "rxs", "rdbms_name": dbname}


_cluster = None
_cluster_lock = threading.Lock()


def pg_cluster():
    """The session's PostgreSQL cluster, started on first use."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            import tempfile
            _cluster = PgCluster(Path(tempfile.mkdtemp(prefix="rxs-e2e-pg-")))
        return _cluster


def copy_tracker(src, home):
    """A private copy of tracker ``src`` at ``home``: the directory, and on
    PostgreSQL a clone of its database (``src`` must not be served meanwhile).
    The copy's mail goes to its own mail.log."""
    src = src if isinstance(src, Tracker) else Tracker(src)
    home = Path(home)
    shutil.copytree(src.home, home)
    copy = Tracker(home)
    if copy.mail_log.exists():
        copy.mail_log.unlink()
    set_config_option(home, "mail", "debug", str(copy.mail_log))
    if src.backend == "postgresql":
        cluster = pg_cluster()
        name = cluster.new_name()
        cluster.clone(src.pg_name, name)
        set_config_option(home, "rdbms", "name", name)
        copy = Tracker(home)
    return copy


# --------------------------------------------------------------------------
# Trackers


class Tracker:
    """A tracker home directory on disk."""

    def __init__(self, home):
        self.home = Path(home)
        self.name = self.home.name
        config = configparser.RawConfigParser(strict=False)
        try:
            config.read(self.home / "config.ini")
        except configparser.Error:
            pass
        get = lambda o: config.get("rdbms", o, fallback="").strip()  # noqa: E731
        self.backend = get("backend") or "sqlite"
        self.pg_name = get("name")
        self.pg_host = get("host")

    @property
    def db_path(self):
        return self.home / "db" / "db"

    @property
    def mail_log(self):
        return self.home / "mail.log"

    def sql(self, query, params=()):
        """Run a read-only query on the tracker's database (``?`` placeholders
        on both backends)."""
        if self.backend == "postgresql":
            import psycopg2
            con = psycopg2.connect(host=self.pg_host, user="postgres", dbname=self.pg_name)
            try:
                cur = con.cursor()
                cur.execute(query.replace("%", "%%").replace("?", "%s"), params)
                return [tuple(r) for r in cur.fetchall()]
            finally:
                con.rollback()
                con.close()
        uri = "file:%s?mode=ro" % urllib.parse.quote(str(self.db_path))
        con = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def consistent(self):
        """The database is sound: sqlite's integrity check; on PostgreSQL, every
        id sequence is past the highest id of its class (PostgreSQL itself is
        crash-safe; what a daemon could break is the layout's invariants)."""
        if self.backend != "postgresql":
            return self.sql("pragma integrity_check") == [("ok",)]
        tables = [t for (t,) in self.sql(
            "select relname::text from pg_class where relkind = 'r' "
            "and relname like '\\_%' and relname not like '\\_\\_%'")]
        for t in tables:
            ((seq_ok,),) = self.sql(
                "select coalesce(max(id), 0) <= (select last_value from %s_ids) from %s"
                % (t, t))
            if not seq_ok:
                return False
        return True

    @property
    def commit_order(self):
        """An ORDER BY expression putting rows in the order their transactions
        committed: sqlite's ``rowid``; on PostgreSQL the commit timestamps the
        test cluster tracks (``track_commit_timestamp``)."""
        if self.backend == "postgresql":
            return "pg_xact_commit_timestamp(xmin), ctid"
        return "rowid"

    def columns(self, table):
        """The column names of a table."""
        if self.backend == "postgresql":
            return [r[0] for r in self.sql(
                "select column_name::text from information_schema.columns "
                "where table_name = ? order by ordinal_position", (table,))]
        return [r[1] for r in self.sql("pragma table_info(%s)" % table)]

    def file_path(self, classname, itemid):
        """Where Roundup keeps the content of a FileClass item."""
        n = int(itemid)
        return (self.home / "db" / "files" / classname / str(n // 1000)
                / ("%s%d" % (classname, n)))

    def mail_text(self, timeout=10.0):
        """The mail debug file, once everything queued is delivered: our server
        sends mail from its outbox (db/outbox/) after the call has answered."""
        outbox = self.home / "db" / "outbox"
        deadline = time.monotonic() + timeout
        while any(outbox.glob("*.mail")) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.mail_log.read_text() if self.mail_log.exists() else ""


# --------------------------------------------------------------------------
# Targets


class Target:
    name = None

    def make_tracker(self, home):
        raise NotImplementedError

    def server_command(self, tracker, name=None):
        raise NotImplementedError


class OursTarget(Target):
    """The Rust binary under test."""

    name = "ours"

    def __init__(self, binary=None):
        self.binary = Path(binary or os.environ.get("RXS_BIN") or DEFAULT_BIN)

    def check(self):
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            pytest.fail(
                "roundup-xmlrpc-server binary not found at %s: run `cargo build` "
                "in %s first (or set RXS_BIN, or use --target=roundup / "
                "E2E_TARGET=roundup to run against Roundup 2.6.0)"
                % (self.binary, REPO), pytrace=False)

    def make_tracker(self, home):
        self.check()
        home = Path(home)
        if backend() == "postgresql":
            return copy_tracker(self._pg_template(), home)
        return self.init_tracker(home)

    def init_tracker(self, home, extra=None):
        """``init`` a tracker at ``home`` (with more ``--set`` values)."""
        cmd = [str(self.binary), "init", str(home),
               "--admin-password", ADMIN_PASSWORD]
        settings = dict(tracker_settings(home))
        settings.update(extra or {})
        for key, value in settings.items():
            cmd += ["--set", "%s=%s" % (key, value)]
        run_checked(cmd, "init")
        tracker = Tracker(home)
        if tracker.backend == "sqlite" and not tracker.db_path.is_file():
            pytest.fail("`%s` exited 0 but did not create %s"
                        % (" ".join(cmd), tracker.db_path), pytrace=False)
        return tracker

    _pg_templates = {}
    _pg_lock = threading.Lock()

    def _pg_template(self):
        """The tracker ``init`` made once per session in a PostgreSQL database;
        trackers are copies of it with a clone of its database."""
        with self._pg_lock:
            key = str(self.binary)
            if key not in self._pg_templates:
                import tempfile
                cluster = pg_cluster()
                top = tempfile.mkdtemp(prefix="rxs-e2e-tmpl-")
                atexit.register(shutil.rmtree, top, True)
                home = Path(top) / TRACKER_NAME
                name = cluster.new_name("ours_template")
                self._pg_templates[key] = self.init_tracker(home, cluster.settings(name))
            return self._pg_templates[key]

    def server_command(self, tracker, name=None):
        """``-i DIR`` form, or Roundup's ``NAME=DIR`` form when name is given."""
        if name is not None:
            return [str(self.binary), "--port", "0", "--bind", "127.0.0.1",
                    "%s=%s" % (name, tracker.home)]
        return [str(self.binary), "-i", str(tracker.home),
                "--port", "0", "--bind", "127.0.0.1"]


class RoundupTarget(Target):
    """Roundup 2.6.0's standalone server (reference behaviour).

    ``install`` + ``initialise`` cost ~2 s (PBKDF2 and template copying), so a
    pristine tracker is made once per session and copied; only the mail debug
    path in config.ini depends on the tracker home and is rewritten.
    """

    name = "roundup"

    def __init__(self, cache_dir):
        self.cache_dir = Path(cache_dir)
        self._template = None
        self._lock = threading.Lock()

    @staticmethod
    def available():
        try:
            import roundup.instance  # noqa: F401
            import roundup.xmlrpc  # noqa: F401
        except ImportError:
            return False
        return True

    def check(self):
        if not self.available():
            missing_tool("roundup 2.6.0 is not importable "
                         "(pip install -r tests/requirements.txt)")

    def _admin(self, home, *args):
        exe = shutil.which("roundup-admin")
        cmd = ([exe] if exe else [sys.executable, "-m", "roundup.scripts.roundup_admin"])
        run_checked(cmd + ["-i", str(home)] + list(args), "roundup-admin")

    def _make_template(self):
        with self._lock:
            if self._template is None:
                home = self.cache_dir / TRACKER_NAME
                values = dict(tracker_settings(home))
                kind = "sqlite"
                if backend() == "postgresql":
                    kind = "postgresql"
                    cluster = pg_cluster()
                    values.update(cluster.settings(cluster.new_name("roundup_template")))
                    del values["rdbms_backend"]
                settings = ",".join("%s=%s" % kv for kv in values.items())
                self._admin(home, "install", "classic", kind, settings)
                self._admin(home, "initialise", ADMIN_PASSWORD)
                self._template = home
        return self._template

    def make_tracker(self, home):
        self.check()
        template = self._make_template()
        home = Path(home)
        if backend() == "postgresql":
            return copy_tracker(Tracker(template), home)
        shutil.copytree(template, home)
        config = home / "config.ini"
        old = "debug = %s\n" % (template / "mail.log")
        text = config.read_text()
        assert old in text, "mail debug setting not found in config.ini"
        config.write_text(text.replace(old, "debug = %s\n" % (home / "mail.log")))
        return Tracker(home)

    def server_command(self, tracker, name=None):
        return [sys.executable, str(REFERENCE_SERVER), "--port", "0",
                "%s=%s" % (name or tracker.name, tracker.home)]


def run_checked(cmd, what):
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail("%s failed (exit %s): %s\nstdout:\n%s\nstderr:\n%s"
                    % (what, proc.returncode, " ".join(cmd), proc.stdout,
                       proc.stderr), pytrace=False)
    return proc


# --------------------------------------------------------------------------
# Servers


class Server:
    """A running server process serving one tracker."""

    def __init__(self, target, tracker, command=None, path=None):
        self.target = target
        self.tracker = tracker
        self.command = command or target.server_command(tracker)
        self.path = path if path is not None else "/%s/xmlrpc" % tracker.name
        self.proc = None
        self.base = None
        self.output = []
        self.log = tracker.home.parent / ("server-%s.log" % tracker.name)

    # -- lifecycle --------------------------------------------------------

    def start(self):
        self._stderr = open(self.log, "ab")
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        line = _readline_with_timeout(self.proc, START_TIMEOUT)
        m = READY_RE.match(line.decode("utf-8", "replace")) if line else None
        if not m:
            rc = self.proc.poll()
            self._kill()
            why = ("it exited with status %s" % rc if rc is not None
                   else "none within %ss" % START_TIMEOUT)
            pytest.fail("server did not print the ready line `listening on "
                        "http://127.0.0.1:PORT/` (%s): %s\nfirst line: %r\n"
                        "stderr:\n%s" % (why, " ".join(self.command), line,
                                         self.stderr_text()), pytrace=False)
        self.base = m.group(1)
        self.port = int(m.group(2))
        # Keep draining stdout so that the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def stderr_text(self):
        self._stderr.flush()
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; the server must exit with status 0 within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            self._stderr.close()
            assert rc in (None, 0), "server died early with status %s\n%s" % (
                rc, self.stderr_text())
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            pytest.fail("server did not exit within %ss of SIGTERM" % STOP_TIMEOUT)
        finally:
            self._stderr.close()
        assert rc == 0, "server exited with status %s after SIGTERM\n%s" % (
            rc, self.log.read_text(errors="replace")[-4000:])

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- clients ----------------------------------------------------------

    @property
    def url(self):
        return self.base + self.path

    def url_for(self, user=None, password=None, path=None):
        netloc = self.base[len("http://"):]
        if user is not None:
            cred = urllib.parse.quote(user, safe="")
            if password is not None:
                cred += ":" + urllib.parse.quote(password, safe="")
            netloc = cred + "@" + netloc
        return "http://%s%s" % (netloc, self.path if path is None else path)

    def proxy(self, user=None, password=None, path=None, transport=None):
        """An ``xmlrpc.client.ServerProxy`` with Basic credentials in the URL."""
        return xmlrpc.client.ServerProxy(self.url_for(user, password, path),
                                         allow_none=True, transport=transport)

    def admin(self):
        return self.proxy("admin", ADMIN_PASSWORD)


def checklist_setup(server):
    """Section 14 setup: admin creates joe/secret (User), who must be user3."""
    uid = server.admin().create(
        "user", "username=joe", "password=secret", "roles=User",
        "address=joe@example.com")
    assert uid == "3"


def _readline_with_timeout(proc, timeout):
    result = []

    def read():
        result.append(proc.stdout.readline())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return result[0] if result else None


# --------------------------------------------------------------------------
# Calls


def fault(method, *args):
    """Call ``method(*args)``, which must fail with an XML-RPC fault; return
    ``(faultCode, faultString)``."""
    try:
        result = method(*args)
    except xmlrpc.client.Fault as f:
        return f.faultCode, f.faultString
    pytest.fail("expected a Fault, got %s" % _short(result))


def protocol_error(method, *args):
    """Call ``method(*args)``, which must fail at the HTTP level; return the
    ``xmlrpc.client.ProtocolError``."""
    try:
        result = method(*args)
    except xmlrpc.client.ProtocolError as e:
        return e
    pytest.fail("expected an HTTP error, got %s" % _short(result))


def _short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class RecordingTransport(xmlrpc.client.Transport):
    """A Transport remembering the raw body of the last response."""

    last_body = b""

    def parse_response(self, response):
        body = response.read()
        self.last_body = body
        p, u = self.getparser()
        p.feed(body)
        p.close()
        return u.close()


def raw_post(server, body, headers=None, method="POST", path=None,
             auth=("admin", ADMIN_PASSWORD)):
    """Send a raw HTTP request; return ``(status, headers, body, version)``."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    hdrs = {"Content-Type": "text/xml"}
    if auth is not None:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        hdrs["Authorization"] = "Basic " + token
    hdrs.update(headers or {})
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    try:
        conn.request(method, path or server.path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data, resp.version
    finally:
        conn.close()


def set_config_option(tracker, section, name, value):
    """Set ``name = value`` in ``[section]`` of the tracker's config.ini
    (replacing the option, or a commented-out ``#name =`` line, if present);
    ``tracker`` is a :class:`Tracker` or its home directory."""
    home = tracker.home if isinstance(tracker, Tracker) else Path(tracker)
    config = home / "config.ini"
    text = config.read_text()
    header = "[%s]\n" % section
    assert header in text, "no [%s] in %s" % (section, config)
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body = text[start:end]
    line = ("%s = %s" % (name, value)).rstrip()
    body, n = re.subn(r"(?m)^#?%s\s*=.*$" % re.escape(name), line.replace("\\", "\\\\"),
                      body, count=1)
    if n == 0:
        body = line + "\n" + body
    config.write_text(text[:start] + body + text[end:])
