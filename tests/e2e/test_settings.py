"""The config.ini settings audit: every option that tracker-template/README.md
lists as used has its effect on a running server (or on ``init``).

Options tested elsewhere: ``[web] api_calls_per_interval`` /
``api_interval_in_sec`` and ``[xmlrpc_server] bind``, ``trusted_proxies``,
``max_connections``, ``max_request_bytes``, ``request_timeout_sec`` in
test_ops.py; ``[web] api_failed_login_limit``, ``migrate_passwords``,
``login_empty_passwords``, ``[xmlrpc_server] password_default_scheme`` and
``bcrypt_cost`` in test_security_auth.py; ``[nosy]`` defaults and
``[mail] debug`` in test_conformance.py (items 71-73). That each option
reaches the server's settings is checked by tests/tracker_settings.rs.
"""

import base64
import shutil
import re
import socketserver
import ssl
import sqlite3
import subprocess
import threading
import time
import xmlrpc.client

import pytest

from harness import Server, Tracker, checklist_setup, copy_tracker

pytestmark = pytest.mark.ours_only


@pytest.fixture(scope="module")
def template_tracker(ours_target, tmp_path_factory):
    return ours_target.make_tracker(tmp_path_factory.mktemp("settings-template") / "demo")


@pytest.fixture
def tracker(template_tracker, tmp_path):
    """A private copy of the template tracker (and of its database) whose mail
    goes to its own mail.log."""
    return copy_tracker(template_tracker, tmp_path / "demo")


def set_option(tracker, section, name, value):
    """Sets ``name = value`` in ``[section]`` of config.ini (replacing the
    option's line, or adding it after the section header)."""
    config = tracker.home / "config.ini"
    text = config.read_text()
    header = "[%s]\n" % section
    assert header in text, section
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    line = ("%s = %s" % (name, value)).rstrip()
    body, n = re.subn(r"(?m)^%s\s*=.*$" % re.escape(name), line, text[start:end])
    if n == 0:
        body = line + "\n" + body
    config.write_text(text[:start] + body + text[end:])


def edit_schema(tracker, old, new):
    path = tracker.home / "schema.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def start_fails(ours_target, tracker):
    proc = subprocess.run(
        [str(ours_target.binary), "-i", str(tracker.home), "--port", "0",
         "--bind", "127.0.0.1"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    return proc.returncode, proc.stderr


def nosy_mail(srv):
    """joe (user3) opens an issue, bob (user4) replies: the reply's nosy mail
    goes to joe. Returns the issue designator."""
    admin = srv.admin()
    admin.create("user", "username=bob", "password=bobpw", "roles=User",
                 "address=bob@example.com")
    joe, bob = srv.proxy("joe", "secret"), srv.proxy("bob", "bobpw")
    m1 = joe.create("msg", "content=First message.", "author=joe")
    issue = "issue" + joe.create("issue", "title=Nosy test", "messages=" + m1)
    m2 = bob.create("msg", "content=Reply from bob.", "author=bob")
    bob.set(issue, "messages=+" + m2)
    return issue


# --------------------------------------------------------------------------
# [main]


def test_main_database_names_the_database_directory(ours_target, tracker):
    """(On PostgreSQL the directory holds the content files and the outbox.)"""
    (tracker.home / "db").rename(tracker.home / "store")
    set_option(tracker, "main", "database", "store")
    with Server(ours_target, tracker) as srv:
        assert srv.admin().lookup("user", "admin") == "1"
        srv.admin().create("keyword", "name=kept")
        fid = srv.admin().create("file", "content=stored", "name=f")
    assert not (tracker.home / "db").exists()
    assert (tracker.home / "store" / "files" / "file" / "0" / ("file" + fid)).read_text() \
        == "stored"
    if tracker.backend == "postgresql":
        assert tracker.sql("select _name from _keyword") == [("kept",)]
        return
    con = sqlite3.connect(tracker.home / "store" / "db")
    try:
        assert con.execute("select _name from _keyword").fetchall() == [("kept",)]
    finally:
        con.close()


def test_main_admin_email_at_init(ours_target, tmp_path):
    home = tmp_path / "t"
    subprocess.run([str(ours_target.binary), "init", str(home), "--admin-password", "pw",
                    "--set", "admin_email=boss", "--set", "mail_domain=example.org"],
                   check=True, capture_output=True, timeout=120)
    assert Tracker(home).sql("select _address from _user where id = 1") == [
        ("boss@example.org",)]


def test_main_timezone_is_the_default_for_date_input(ours_target, tracker):
    edit_schema(tracker, "[class.issue.properties]\n",
                "[class.issue.properties]\ndeadline = \"Date\"\n")
    set_option(tracker, "main", "timezone", "5")
    with Server(ours_target, tracker) as srv:
        admin = srv.admin()
        i1 = admin.create("issue", "title=a", "deadline=2020-01-01.10:00")
        assert admin.display("issue" + i1, "deadline") == {
            "deadline": "<Date 2020-01-01.05:00:00.000>"}
        # A user's own time zone still wins.
        admin.set("user1", "timezone=2")
        i2 = admin.create("issue", "title=b", "deadline=2020-01-01.10:00")
        assert admin.display("issue" + i2, "deadline") == {
            "deadline": "<Date 2020-01-01.08:00:00.000>"}


def test_main_pbkdf2_rounds_for_new_and_migrated_hashes(ours_target, tracker):
    set_option(tracker, "main", "password_pbkdf2_default_rounds", "2000")
    with Server(ours_target, tracker) as srv:
        checklist_setup(srv)
        assert srv.tracker.sql("select _password from _user where id = 3")[0][0].startswith(
            "{PBKDF2S5}2000$")
        # admin's 250000 rounds are more than enough: not migrated.
        before = srv.tracker.sql("select _password from _user where id = 1")[0][0]
        assert before.startswith("{PBKDF2S5}250000$")
        assert srv.admin().lookup("user", "admin") == "1"
        assert srv.tracker.sql("select _password from _user where id = 1")[0][0] == before


# --------------------------------------------------------------------------
# [tracker], [mail] domain and debug


def test_tracker_name_web_email_in_nosy_mail(ours_target, tracker):
    set_option(tracker, "tracker", "name", "Bug Farm")
    set_option(tracker, "tracker", "web", "https://bugs.example.com/")
    set_option(tracker, "tracker", "email", "bugs")  # @<[mail] domain> is added
    with Server(ours_target, tracker) as srv:
        checklist_setup(srv)
        issue = nosy_mail(srv)
        mail = srv.tracker.mail_text()
    assert "To: joe@example.com" in mail, mail
    assert "From: bob <bugs@example.com>" in mail, mail
    assert re.search(r"Message-Id: <[^>]+@example\.com>", mail), mail
    assert "Bug Farm" in mail and "<https://bugs.example.com/%s>" % issue in mail, mail


# --------------------------------------------------------------------------
# [nosy]


def test_nosy_messages_to_author_add_author_add_recipients(ours_target, tracker):
    set_option(tracker, "nosy", "messages_to_author", "yes")
    set_option(tracker, "nosy", "add_author", "no")
    set_option(tracker, "nosy", "add_recipients", "no")
    with Server(ours_target, tracker) as srv:
        checklist_setup(srv)
        admin = srv.admin()
        admin.create("user", "username=bob", "password=bobpw", "roles=User",
                     "address=bob@example.com")
        joe = srv.proxy("joe", "secret")
        m1 = joe.create("msg", "content=Hello.", "author=joe", "recipients=4")
        issue = "issue" + joe.create("issue", "title=t", "messages=" + m1)
        # Neither the author nor the message's recipients joined the nosy list
        # (defaults: both would), but the author got a copy (default: no mail).
        assert admin.display(issue, "nosy") == {"nosy": []}
        assert "To: joe@example.com" in srv.tracker.mail_text()


# --------------------------------------------------------------------------
# [web] failed-login interval


def test_web_failed_login_interval(ours_target, tracker):
    set_option(tracker, "web", "api_failed_login_limit", "2")
    set_option(tracker, "web", "api_failed_login_interval_in_sec", "40")
    with Server(ours_target, tracker) as srv:
        bad = srv.proxy("admin", "wrong")
        for _ in range(2):
            with pytest.raises(xmlrpc.client.ProtocolError) as e:
                bad.schema()
            assert e.value.errcode == 403
        with pytest.raises(xmlrpc.client.ProtocolError) as e:
            bad.schema()
        assert e.value.errcode == 429
        headers = {k.lower(): v for k, v in e.value.headers.items()}
        assert headers["retry-after"] == "20"
        assert headers["x-ratelimit-limit"] == "2"
        assert headers["x-ratelimit-limit-period"] == "40"


# --------------------------------------------------------------------------
# [rdbms]


@pytest.mark.sqlite_only
def test_rdbms_sqlite_timeout_bounds_the_wait_for_a_locked_database(ours_target, tracker):
    set_option(tracker, "rdbms", "sqlite_timeout", "1")
    with Server(ours_target, tracker) as srv:
        admin = srv.admin()
        assert admin.lookup("user", "admin") == "1"
        lock = sqlite3.connect(tracker.db_path, isolation_level=None, timeout=30)
        try:
            lock.execute("BEGIN IMMEDIATE")
            t0 = time.monotonic()
            with pytest.raises(xmlrpc.client.Fault) as e:
                admin.create("keyword", "name=waits")
            elapsed = time.monotonic() - t0
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert e.value.faultCode == -32603, e.value
        assert 0.9 <= elapsed < 10, elapsed  # the default would wait 30 s
        admin.create("keyword", "name=after")


@pytest.mark.parametrize("option, change, message", [
    ("allow_alter", ("[class.keyword]\nkey = \"name\"\nproperties = { name = \"String\" }",
                     "[class.keyword]\nkey = \"name\"\nproperties = { name = \"String\", "
                     "colour = \"String\" }"),
     'ALTER operation disallowed: "keyword"'),
    ("allow_create", ("# Keywords\n",
                      "[class.colour]\nkey = \"name\"\nproperties = { name = \"String\" }\n\n"
                      "# Keywords\n"),
     'CREATE operation disallowed: "colour"'),
])
def test_rdbms_allow_create_and_alter_protect_the_database(ours_target, tracker, option,
                                                           change, message):
    set_option(tracker, "rdbms", option, "no")
    edit_schema(tracker, *change)
    code, stderr = start_fails(ours_target, tracker)
    assert code == 6 and message in stderr, (code, stderr)
    set_option(tracker, "rdbms", option, "yes")
    with Server(ours_target, tracker) as srv:
        assert srv.admin().lookup("user", "admin") == "1"


def test_rdbms_backend_must_be_sqlite_or_postgresql(ours_target, tracker):
    set_option(tracker, "rdbms", "backend", "mysql")
    code, stderr = start_fails(ours_target, tracker)
    assert code == 7 and "only sqlite and postgresql are supported" in stderr, (code, stderr)


# --------------------------------------------------------------------------
# [mail] SMTP: host, port, username, password (file://), tls


class FakeSmtp(socketserver.ThreadingTCPServer):
    """A minimal SMTP server recording the commands and messages it gets."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, starttls=False, tls_context=None):
        super().__init__(("127.0.0.1", 0), FakeSmtpHandler)
        self.starttls = starttls
        # With a server-side ssl.SSLContext, STARTTLS really switches to TLS.
        self.tls_context = tls_context
        self.commands = []
        self.messages = []
        # The TLS version of each completed handshake; the errors of failed ones.
        self.tls_sessions = []
        self.tls_errors = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]


class FakeSmtpHandler(socketserver.StreamRequestHandler):
    timeout = 10

    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def start_tls(self):
        self.send("220 ready to start TLS")
        try:
            tls = self.server.tls_context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.server.tls_errors.append(str(e))
            return False
        self.server.tls_sessions.append(tls.version())
        self.connection = tls
        self.rfile = tls.makefile("rb")
        self.wfile = tls.makefile("wb")
        return True

    def handle(self):
        srv = self.server
        self.send("220 fake ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            srv.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.send("250-fake")
                if srv.starttls and not isinstance(self.connection, ssl.SSLSocket):
                    self.send("250-STARTTLS")
                self.send("250 AUTH PLAIN LOGIN")
            elif verb == "STARTTLS":
                if srv.tls_context is None:
                    self.send("454 TLS not available")
                elif not self.start_tls():
                    return
            elif verb == "AUTH":
                self.send("235 ok")
            elif verb == "DATA":
                self.send("354 go on")
                data = []
                while True:
                    part = self.rfile.readline()
                    if part in (b".\r\n", b""):
                        break
                    data.append(part)
                srv.messages.append(b"".join(data).decode("utf-8", "replace"))
                self.send("250 queued")
            elif verb == "QUIT":
                self.send("221 bye")
                return
            else:
                self.send("250 ok")


def smtp_tracker(tracker, smtp, tls):
    set_option(tracker, "mail", "debug", "")
    set_option(tracker, "mail", "host", "127.0.0.1")
    set_option(tracker, "mail", "port", str(smtp.port))
    set_option(tracker, "mail", "username", "mailer")
    (tracker.home / "smtp-secret").write_text("s3cret\nignored\n")
    set_option(tracker, "mail", "password", "file://smtp-secret")
    set_option(tracker, "mail", "tls", "yes" if tls else "no")


def test_mail_smtp_host_port_username_password(ours_target, tracker):
    smtp = FakeSmtp()
    try:
        smtp_tracker(tracker, smtp, tls=False)
        with Server(ours_target, tracker) as srv:
            checklist_setup(srv)
            nosy_mail(srv)
            # Delivery is asynchronous: mail still queued at shutdown waits for the
            # next start, so wait for it here (it raced SIGTERM on a busy machine).
            assert wait_for(lambda: smtp.messages), (smtp.commands, srv.stderr_text())
        plain = base64.b64encode(b"\0mailer\0s3cret").decode()
        auth = [c for c in smtp.commands if c.upper().startswith("AUTH")]
        assert auth, smtp.commands
        assert auth[0] == "AUTH PLAIN " + plain, auth
        assert "RCPT TO:<joe@example.com>" in smtp.commands, smtp.commands
        assert len(smtp.messages) == 1 and "Reply from bob." in smtp.messages[0]
        assert not tracker.mail_log.exists()
    finally:
        smtp.shutdown()
        smtp.server_close()


def test_mail_tls_requires_starttls(ours_target, tracker):
    smtp = FakeSmtp(starttls=True)
    try:
        smtp_tracker(tracker, smtp, tls=True)
        with Server(ours_target, tracker) as srv:
            checklist_setup(srv)
            nosy_mail(srv)  # the call succeeds; the mail is not sent
            assert srv.admin().lookup("user", "bob") == "4"
        assert "STARTTLS" in [c.upper() for c in smtp.commands], smtp.commands
        assert not any(c.upper().startswith("AUTH") for c in smtp.commands)
        assert smtp.messages == []
    finally:
        smtp.shutdown()
        smtp.server_close()




def make_ca_and_server_cert(tmp):
    """A CA and a certificate for 127.0.0.1 signed by it (rustls refuses a
    self-signed CA certificate as the server's own)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl program is needed (apt-get install openssl)")

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (tmp / n for n in
                                  ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=Test mail CA",
        "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext = tmp / "ext.cnf"
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ca, ctx


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_mail_starttls_with_a_trusted_certificate(ours_target, tracker, tmp_path,
                                                   monkeypatch):
    """STARTTLS (rustls, no OpenSSL): the server's certificate is checked against
    the system CA store, which SSL_CERT_FILE replaces here by our own CA; the
    credentials and the mail travel inside TLS."""
    ca, ctx = make_ca_and_server_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    smtp = FakeSmtp(starttls=True, tls_context=ctx)
    try:
        smtp_tracker(tracker, smtp, tls=True)
        with Server(ours_target, tracker) as srv:
            checklist_setup(srv)
            nosy_mail(srv)
            assert wait_for(lambda: smtp.messages), (smtp.commands, smtp.tls_errors,
                                                      srv.stderr_text())
        assert smtp.tls_sessions and smtp.tls_sessions[0] in ("TLSv1.2", "TLSv1.3"), \
            smtp.tls_sessions
        verbs = [c.split(" ", 1)[0].upper() for c in smtp.commands]
        assert verbs.index("STARTTLS") < verbs.index("AUTH") < verbs.index("DATA"), verbs
        assert "Reply from bob." in smtp.messages[0]
    finally:
        smtp.shutdown()
        smtp.server_close()


def test_mail_starttls_refuses_an_untrusted_certificate(ours_target, tracker, tmp_path,
                                                        monkeypatch):
    """A certificate from a CA the store does not hold: the handshake fails, the
    password is never sent and the mail stays queued."""
    _, ctx = make_ca_and_server_cert(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = make_ca_and_server_cert(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    smtp = FakeSmtp(starttls=True, tls_context=ctx)
    try:
        smtp_tracker(tracker, smtp, tls=True)
        with Server(ours_target, tracker) as srv:
            checklist_setup(srv)
            nosy_mail(srv)
            assert wait_for(lambda: smtp.tls_errors), (smtp.commands, srv.stderr_text())
        assert smtp.tls_sessions == []
        assert not any(c.upper().startswith("AUTH") for c in smtp.commands), smtp.commands
        assert smtp.messages == []
        queued = list((tracker.home / "db" / "outbox").glob("*.mail"))
        assert queued, "the mail stays in the outbox for a later try"
    finally:
        smtp.shutdown()
        smtp.server_close()