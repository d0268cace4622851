"""Authentication, tried as a hostile client would (security issue, part
"Authentication").

Each test replays the request that showed a weakness:

* a user without a password logged in with ``Authorization: Basic
  base64("name")`` (no ``:``);
* ``Basic base64(":")`` (empty user name) was taken for anonymous;
* an unknown user name was answered at once while a wrong password cost a
  hash (a user-name oracle);
* a burst of wrong passwords from one address locked the real user out from
  every other address;
* ``[web] migrate_passwords`` and ``login_empty_passwords`` were read but
  never used;
* ``create('user', 'username=ADMIN')`` succeeded beside ``admin``.

Different client addresses are real: the client binds its socket to
127.0.0.N (all of 127/8 is loopback on Linux), so the server sees that peer.

Most tests are ``ours_only``: Roundup's standalone server has none of these
defences. The empty-user-name test runs against both.
"""

import base64
import hashlib
import http.client
import os
import re
import statistics
import time
import xmlrpc.client

import pytest

from harness import ADMIN_PASSWORD, USAGE, Server, checklist_setup

SRC_DEFAULT = "127.0.0.1"


# --------------------------------------------------------------------------
# Helpers


def token(text):
    return "Basic " + base64.b64encode(text.encode("utf-8")).decode()


def login(server, credentials, src=SRC_DEFAULT, method="lookup",
          params=("user", "@current_user"), timeout=60):
    """POSTs one call with ``Authorization: Basic base64(credentials)`` (the
    raw ``user:password`` text, or None for no header) from source address
    ``src``. Returns ``(status, headers, body, seconds)``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout,
                                      source_address=(src, 0))
    headers = {"Content-Type": "text/xml"}
    if credentials is not None:
        headers["Authorization"] = token(credentials)
    body = xmlrpc.client.dumps(tuple(params), methodname=method,
                               allow_none=True).encode()
    t0 = time.monotonic()
    try:
        conn.request("POST", server.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data, time.monotonic() - t0
    finally:
        conn.close()


def logged_in_as(server, credentials, src=SRC_DEFAULT):
    """The user id the server resolved the credentials to (HTTP 200 and a
    ``lookup('user', '@current_user')`` result), or the HTTP status."""
    status, _, data, _ = login(server, credentials, src)
    if status != 200:
        return status
    (uid,), _ = xmlrpc.client.loads(data)
    return uid


def set_option(tracker, section, name, value):
    """Sets ``name = value`` in ``[section]`` of the tracker's config.ini
    (replacing the option's line, or adding it after the header)."""
    config = tracker.home / "config.ini"
    text = config.read_text()
    header = "[%s]\n" % section
    if header not in text:
        text += "\n" + header
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body, n = re.subn(r"(?m)^%s\s*=.*$" % re.escape(name),
                      "%s = %s" % (name, value), text[start:end])
    if n == 0:
        body = "%s = %s\n" % (name, value) + body
    config.write_text(text[:start] + body + text[end:])


def stored_password(server, username):
    rows = server.tracker.sql(
        "select _password from _user where _username = ? and __retired__ = 0",
        (username,))
    assert len(rows) == 1, rows
    return rows[0][0]


def h64(data):
    return base64.b64encode(data, b"./").strip(b"=\n").decode()


def pbkdf2s5(plaintext, rounds):
    """A Roundup ``{PBKDF2S5}`` value (PBKDF2-HMAC-SHA512) with ``rounds``."""
    salt = os.urandom(20)
    digest = hashlib.pbkdf2_hmac("sha512", plaintext.encode(), salt, rounds, 64)
    return "{PBKDF2S5}%d$%s$%s" % (rounds, h64(salt), h64(digest))


def roundup_verifies(stored, plaintext):
    """Python Roundup's own check of a stored value."""
    from roundup.password import Password
    return Password(encrypted=stored, strict=True) == plaintext


@pytest.fixture
def tracker(make_tracker):
    """A fresh tracker directory (not served), for tests that edit config.ini."""
    return make_tracker()


def serve(target, tracker, options):
    """A Server on ``tracker`` after setting ``{(section, name): value}``."""
    for (section, name), value in options.items():
        set_option(tracker, section, name, value)
    return Server(target, tracker)


# --------------------------------------------------------------------------
# Empty passwords and malformed credentials


@pytest.mark.ours_only
def test_user_without_password_cannot_log_in_by_name_alone(fresh_server):
    """Roundup's standalone server logs ``Basic base64("nopw")`` in as nopw,
    a User without a password. Here the credentials lack the ``:`` and are
    malformed (400); ``nopw:`` is a failed login (403) because
    ``[web] login_empty_passwords`` is off by default."""
    admin = fresh_server.admin()
    uid = admin.create("user", "username=nopw", "roles=User")
    assert stored_password(fresh_server, "nopw") is None
    status, _, data, _ = login(fresh_server, "nopw")
    assert status == 400, (status, data)
    assert b"Authorization" in data
    for creds in ("nopw:", "nopw:x", "nopw: "):
        assert logged_in_as(fresh_server, creds) == 403, creds
    # Not for anonymous either, with or without ':'; without a header
    # anonymous is still anonymous (no password login involved).
    assert login(fresh_server, "anonymous")[0] == 400
    assert login(fresh_server, "anonymous:")[0] == 403
    status, _, data, _ = login(fresh_server, None, method="schema", params=())
    assert status == 200 and b"Forbidden" in data
    # The admin can give nopw a password, which then works.
    admin.set("user" + uid, "password=now-set")
    assert logged_in_as(fresh_server, "nopw:now-set") == uid


@pytest.mark.ours_only
def test_login_empty_passwords_yes_lets_password_less_users_in(target, tracker):
    """``[web] login_empty_passwords = yes``: a user without a password logs
    in with an empty one (as on Roundup's web/REST path), and only that."""
    with serve(target, tracker, {("web", "login_empty_passwords"): "yes"}) as srv:
        checklist_setup(srv)
        uid = srv.admin().create("user", "username=nopw", "roles=User")
        assert logged_in_as(srv, "nopw:") == uid
        assert logged_in_as(srv, "nopw:x") == 403
        assert login(srv, "nopw")[0] == 400
        # A user with a password still needs it.
        assert logged_in_as(srv, "joe:") == 403
        assert logged_in_as(srv, "joe:secret") == "3"


def test_empty_user_name_is_a_failed_login(server):
    """``Basic base64(":")`` and ``base64(":pw")``: no user has an empty name,
    so these are failed logins (403), as Roundup answers them; they were
    taken for anonymous here."""
    for creds in (":", ":" + ADMIN_PASSWORD, ":x"):
        status, _, data, _ = login(server, creds, method="schema", params=())
        assert status == 403, (creds, status, data[:200])


# --------------------------------------------------------------------------
# No user-name oracle


@pytest.mark.ours_only
def test_unknown_user_costs_as_much_as_a_wrong_password(target, tracker):
    """An unknown user name, a user without a password and a wrong password
    each cost one password hash (the limiter is off so that every attempt
    is answered 403 after its check). Before, an unknown name was answered
    ~100x faster than a wrong password: a user-name oracle."""
    with serve(target, tracker, {("web", "api_failed_login_limit"): "0"}) as srv:
        checklist_setup(srv)
        srv.admin().create("user", "username=nopw", "roles=User")
        login(srv, "nosuchuser:warmup")  # the dummy hash is made on first use
        times = {"wrong": [], "unknown": [], "nopw": []}
        for i in range(7):
            for kind, creds in (("wrong", "joe:bad%d" % i),
                                ("unknown", "nosuch%d:bad" % i),
                                ("nopw", "nopw:bad%d" % i)):
                status, _, _, secs = login(srv, creds)
                assert status == 403, (creds, status)
                times[kind].append(secs)
        wrong = statistics.median(times["wrong"])
        for kind in ("unknown", "nopw"):
            ratio = statistics.median(times[kind]) / wrong
            assert 0.5 < ratio < 2.0, (
                "%s user answered in %.1f ms, wrong password in %.1f ms"
                % (kind, statistics.median(times[kind]) * 1e3, wrong * 1e3))


# --------------------------------------------------------------------------
# The failed-login limit: (user, address) pairs, with wider ceilings


@pytest.mark.ours_only
def test_guessing_from_one_address_does_not_lock_the_user_out_elsewhere(fresh_server):
    """A burst of wrong passwords for joe from 127.0.0.2 ends in 429 there;
    joe still logs in from 127.0.0.1. Before, the limit was per user name, so
    any client could lock any user out."""
    srv = fresh_server
    statuses = [logged_in_as(srv, "joe:guess%d" % i, src="127.0.0.2") for i in range(8)]
    assert statuses[:4] == [403] * 4 and set(statuses[4:]) == {429}, statuses
    assert logged_in_as(srv, "joe:secret", src="127.0.0.1") == "3"
    # The guessing address stays locked out, even with the right password.
    status, headers, data, _ = login(srv, "joe:secret", src="127.0.0.2")
    assert status == 429, status
    assert int(headers["Retry-After"]) > 0 and b"Please wait" in data


@pytest.mark.ours_only
def test_per_user_and_per_address_ceilings(target, tracker):
    """With ``api_failed_login_limit = 2``: each (user, address) pair may
    fail twice; joe may fail 20 times over all addresses (then he is locked
    out everywhere: the ceiling against distributed guessing), and one
    address may fail 20 times over all user names."""
    with serve(target, tracker, {("web", "api_failed_login_limit"): "2"}) as srv:
        checklist_setup(srv)
        # Two failures from .10 lock only that pair.
        assert [logged_in_as(srv, "joe:bad", src="127.0.0.10") for _ in range(3)] == [
            403, 403, 429]
        assert logged_in_as(srv, "joe:secret", src="127.0.0.11") == "3"
        # Spread over many addresses, the user-wide ceiling (10 x 2) is reached.
        statuses = []
        for n in range(12, 40):
            for _ in range(2):
                statuses.append(logged_in_as(srv, "joe:bad", src="127.0.0.%d" % n))
            if statuses[-1] == 429:
                break
        assert statuses.count(403) == 18, statuses  # 20 minus the 2 from .10
        assert statuses[-1] == 429, statuses
        status, headers, _, _ = login(srv, "joe:secret", src="127.0.0.99")
        assert status == 429 and int(headers["Retry-After"]) > 0
        # Other users are unaffected.
        assert logged_in_as(srv, "admin:" + ADMIN_PASSWORD, src="127.0.0.99") == "1"
        # One address guessing many user names hits the per-address ceiling.
        statuses = [logged_in_as(srv, "ghost%d:x" % i, src="127.0.0.200")
                    for i in range(22)]
        assert statuses[:20] == [403] * 20 and statuses[20:] == [429, 429], statuses
        assert logged_in_as(srv, "admin:" + ADMIN_PASSWORD, src="127.0.0.200") == 429
        assert logged_in_as(srv, "admin:" + ADMIN_PASSWORD, src="127.0.0.201") == "1"


# --------------------------------------------------------------------------
# Password migration


@pytest.mark.ours_only
def test_outdated_hashes_are_migrated_on_login(fresh_server):
    """``[web] migrate_passwords`` (default yes): a verified password stored
    with a deprecated scheme or fewer rounds than
    ``password_pbkdf2_default_rounds`` is re-hashed with the tracker's scheme
    and rounds, once, and Python Roundup reads the new hash."""
    srv = fresh_server
    admin = srv.admin()
    old = {
        "sha": "{SHA}" + hashlib.sha1(b"pw-sha").hexdigest(),
        "weak": pbkdf2s5("pw-weak", 1000),
    }
    ids = {name: admin.create("user", "username=" + name, "roles=User",
                              "password=" + value)
           for name, value in old.items()}
    for name in old:
        assert stored_password(srv, name) == old[name]
        assert logged_in_as(srv, "%s:pw-%s" % (name, name)) == ids[name]
        new = stored_password(srv, name)
        assert new.startswith("{PBKDF2S5}250000$"), new
        assert roundup_verifies(new, "pw-" + name)
        # Logging in again uses the new hash and does not re-hash.
        assert logged_in_as(srv, "%s:pw-%s" % (name, name)) == ids[name]
        assert stored_password(srv, name) == new
        assert logged_in_as(srv, "%s:wrong" % name) == 403
        # The migration is a journalled set by the user.
        rows = srv.tracker.sql(
            "select tag, action, params from user__journal where nodeid = ? "
            "order by " + srv.tracker.commit_order, (int(ids[name]),))
        assert (str(rows[-1][0]), rows[-1][1]) == (ids[name], "set"), rows
        assert "*encrypted*" in rows[-1][2]
    # A wrong password never migrates anything.
    uid = admin.create("user", "username=untouched", "roles=User",
                       "password=" + old["sha"])
    assert logged_in_as(srv, "untouched:nope") == 403
    assert stored_password(srv, "untouched") == old["sha"]
    assert uid


@pytest.mark.ours_only
def test_migrate_passwords_no_keeps_hashes(target, tracker):
    with serve(target, tracker, {("web", "migrate_passwords"): "no"}) as srv:
        checklist_setup(srv)
        sha = "{SHA}" + hashlib.sha1(b"pw").hexdigest()
        uid = srv.admin().create("user", "username=legacy", "roles=User",
                                 "password=" + sha)
        assert logged_in_as(srv, "legacy:pw") == uid
        assert stored_password(srv, "legacy") == sha


@pytest.mark.ours_only
def test_bcrypt_scheme_cost_and_migration(target, tracker):
    """``[xmlrpc_server] password_default_scheme = BCRYPT`` with
    ``bcrypt_cost``: new passwords are bcrypt with that cost; a login
    migrates PBKDF2S5 hashes and bcrypt hashes of a lower cost."""
    options = {("xmlrpc_server", "password_default_scheme"): "BCRYPT",
               ("xmlrpc_server", "bcrypt_cost"): "5"}
    with serve(target, tracker, options) as srv:
        checklist_setup(srv)
        admin = srv.admin()
        assert stored_password(srv, "joe").startswith("{BCRYPT}$2b$05$")
        low = stored_password(srv, "joe")
        pb = pbkdf2s5("pw-pb", 250000)
        uid = admin.create("user", "username=pb", "roles=User", "password=" + pb)
        assert logged_in_as(srv, "pb:pw-pb") == uid
        assert stored_password(srv, "pb").startswith("{BCRYPT}$2b$05$")
    set_option(tracker, "xmlrpc_server", "bcrypt_cost", "6")
    with Server(target, tracker) as srv:
        assert logged_in_as(srv, "joe:secret") == "3"
        now = stored_password(srv, "joe")
        assert now.startswith("{BCRYPT}$2b$06$") and now != low


# --------------------------------------------------------------------------
# User names that differ only in case


@pytest.mark.ours_only
def test_user_names_differing_only_in_case_are_refused(fresh_server):
    """Roundup's keys are case-sensitive, so ``ADMIN`` could be created
    beside ``admin`` (a look-alike account). Here creating or renaming a
    user to such a name, or restoring one, fails with a clear fault."""
    srv = fresh_server
    admin = srv.admin()
    want = USAGE + 'node with key "%s" exists (user names that differ only in case clash)'
    for name in ("ADMIN", "Admin", "JOE", "Anonymous"):
        try:
            admin.create("user", "username=" + name, "password=pw", "roles=User")
        except xmlrpc.client.Fault as f:
            assert (f.faultCode, f.faultString) == (1, want % name)
        else:
            pytest.fail("created user %r beside an existing one" % name)
    with pytest.raises(xmlrpc.client.Fault) as e:
        admin.set("user3", "username=Admin")
    assert e.value.faultString == want % "Admin"
    # A user may change the case of its own name.
    admin.set("user3", "username=Joe")
    assert admin.display("user3", "username") == {"username": "Joe"}
    # A retired user's name is free again, but restoring it must then clash.
    gone = admin.create("user", "username=temp", "roles=User")
    admin.action("retire", "user" + gone)
    admin.create("user", "username=TEMP", "roles=User")
    with pytest.raises(xmlrpc.client.Fault) as e:
        admin.action("restore", "user" + gone)
    assert "clashes with existing one (TEMP)" in e.value.faultString
    names = [r[0].lower() for r in srv.tracker.sql(
        "select _username from _user where __retired__ = 0")]
    assert len(names) == len(set(names)), names


@pytest.mark.ours_only
def test_unicode_user_names_clash_ignoring_case(target, tracker):
    """Without the userauditor (which allows only ASCII names), names are
    compared with Unicode lower-casing, not SQLite's ASCII-only ``lower()``."""
    schema = tracker.home / "schema.toml"
    text = schema.read_text()
    assert "userauditor = true" in text
    schema.write_text(text.replace("userauditor = true", "userauditor = false"))
    with Server(target, tracker) as srv:
        admin = srv.admin()
        uid = admin.create("user", "username=jörg", "roles=User")
        for name in ("JÖRG", "Jörg", "jöRG"):
            with pytest.raises(xmlrpc.client.Fault) as e:
                admin.create("user", "username=" + name, "roles=User")
            assert e.value.faultString == USAGE + (
                'node with key "%s" exists (user names that differ only in case '
                'clash)' % name)
        admin.set("user" + uid, "username=Jörg")
        assert admin.lookup("user", "Jörg") == uid
