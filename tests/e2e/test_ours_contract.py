"""Our server's CLI/HTTP contract and its deliberate differences from Roundup.

Most tests here are ``ours_only`` (Roundup's standalone server lacks the
feature or has the bug we fix).  Where Roundup's differing answer is cheap to
state, the test is written as a per-target expectation instead, so that it is
validated against Roundup too.  Checklist-related differences (items 8, 19,
54, 55, 67-70) live in test_conformance.py.
"""

import base64
import xmlrpc.client

import pytest

from harness import (
    ADMIN_PASSWORD,
    RecordingTransport,
    Server,
    fault,
    protocol_error,
    raw_post,
)

STATUSES = ["unread", "deferred", "chatting", "need-eg", "in-progress",
            "testing", "done-cbb", "resolved"]


# --------------------------------------------------------------------------
# Routing and the command line


@pytest.mark.ours_only
@pytest.mark.parametrize("path", ["/", "/xmlrpc", "/demo", "/demo/xmlrpc"])
def test_paths_served_with_dash_i(server, path):
    # `-i DIR` serves the tracker at /, /xmlrpc, /<dirname>, /<dirname>/xmlrpc.
    assert server.proxy("admin", ADMIN_PASSWORD, path=path).list("status") == STATUSES


@pytest.mark.parametrize("path", ["/other", "/other/xmlrpc"])
def test_name_equals_dir_form(target, make_tracker, path):
    # Roundup's form `--port 0 NAME=DIR` serves /NAME and /NAME/xmlrpc.
    tracker = make_tracker()
    cmd = target.server_command(tracker, name="other")
    with Server(target, tracker, command=cmd, path=path) as srv:
        assert srv.admin().list("priority") == [
            "critical", "urgent", "bug", "feature", "wish"]


# --------------------------------------------------------------------------
# Authentication


def test_login_failures_are_http_403(server, admin):
    # Unknown user, wrong password and retired user: HTTP 403 on both servers.
    uid = admin.create("user", "username=gone", "password=gonepw", "roles=User")
    assert server.proxy("gone", "gonepw").lookup("user", "@current_user") == uid
    admin.action("retire", "user" + uid)
    for user, password in [("gone", "gonepw"), ("admin", "nope"),
                           ("nobody", "x"), ("joe", "")]:
        err = protocol_error(server.proxy(user, password).schema)
        assert err.errcode == 403, (user, password)


@pytest.mark.ours_only
@pytest.mark.parametrize("header", ["Basic", "Basic %%%%", "Basic " + base64.b64encode(
    b"\xff\xfe:x").decode()])
def test_malformed_basic_header_is_4xx(server, header):
    # Roundup drops the connection without a response for "Basic".
    body = xmlrpc.client.dumps((), "schema").encode()
    status, _, _, _ = raw_post(server, body, headers={"Authorization": header},
                               auth=None)
    assert 400 <= status < 500


@pytest.mark.ours_only
def test_password_with_colon(server, admin):
    # Roundup's standalone server splits on every ':' and drops the connection.
    uid = admin.create("user", "username=colon", "password=a:b:c", "roles=User")
    assert server.proxy("colon", "a:b:c").lookup("user", "@current_user") == uid


@pytest.mark.ours_only
def test_user_without_xmlrpc_access_forbidden(server, admin):
    # Only the Anonymous role: Web Access but no Xmlrpc Access.
    admin.create("user", "username=lurker", "password=lurkpw", "roles=Anonymous")
    lurker = server.proxy("lurker", "lurkpw")
    assert fault(lurker.schema) == (403, "Forbidden")
    assert fault(lurker.list, "status") == (403, "Forbidden")


# --------------------------------------------------------------------------
# system.* methods


@pytest.mark.ours_only
def test_multicall_runs_every_call(admin):
    multi = xmlrpc.client.MultiCall(admin)
    multi.create("keyword", "name=mc1")
    multi.lookup("keyword", "mc1")
    multi.list("nosuch")
    multi.lookup("keyword", "mc1")
    raw = multi().results
    assert raw[0] == raw[1] == raw[3] and len(raw[0]) == 1
    assert raw[2] == {
        "faultCode": 1,
        "faultString": "<class 'KeyError'>:'There is no class called \"nosuch\"'"}


@pytest.mark.ours_only
def test_introspection(admin):
    methods = admin.system.listMethods()
    for name in ("system.listMethods", "system.methodHelp",
                 "system.methodSignature", "system.multicall"):
        assert name in methods
    assert isinstance(admin.system.methodHelp("list"), str)
    assert isinstance(admin.system.methodSignature("list"), (str, list))


@pytest.mark.ours_only
def test_introspection_of_an_unknown_method(admin):
    """README's fault table: -32601 for methodHelp/methodSignature of a method that
    does not exist (Roundup's standalone server has no introspection at all)."""
    for introspect in (admin.system.methodHelp, admin.system.methodSignature):
        with pytest.raises(xmlrpc.client.Fault) as e:
            introspect("nosuch")
        assert e.value.faultCode == -32601
        assert e.value.faultString == 'method "nosuch" is not supported'
    # Calling an unknown method stays Roundup's Exception fault.
    with pytest.raises(xmlrpc.client.Fault) as e:
        admin.nosuch()
    assert e.value.faultCode == 1
    assert e.value.faultString == "<class 'Exception'>:method \"nosuch\" is not supported"


# --------------------------------------------------------------------------
# Password values never leave the server


def _password_checks(result):
    """A password value (display/set: the ``password`` member; list: each
    element) is nil or Roundup's struct shape with only the scheme filled in:
    ``password`` and ``plaintext`` are nil.  The callers also check that no
    secret appears anywhere in the raw response body."""
    values = result if isinstance(result, list) else [result.get("password")]
    for value in values:
        if value is not None:
            assert isinstance(value, dict), value
            assert value.get("scheme") == "PBKDF2S5", value
            assert value.get("password") is None and value.get("plaintext") is None, value


@pytest.fixture(scope="module")
def pw_user(server, admin):
    return admin.create("user", "username=pwuser", "password=Pw-Plain-1",
                        "roles=User", "address=pw@example.com")


def _stored(server, uid):
    (stored,), = server.tracker.sql("select _password from _user where id=?",
                                    (int(uid),))
    assert stored.startswith("{PBKDF2S5}")
    return stored


def _secrets(stored, *plaintexts):
    data = stored[len("{PBKDF2S5}"):]
    rounds, salt, digest = data.split("$")
    return [stored.encode(), data.encode(), salt.encode(), digest.encode()] + [
        p.encode() for p in plaintexts]


@pytest.mark.ours_only
@pytest.mark.parametrize("who", ["admin", "self"])
def test_password_not_in_display_or_list(server, pw_user, who):
    transport = RecordingTransport()
    user, password = ("admin", ADMIN_PASSWORD) if who == "admin" else (
        "pwuser", "Pw-Plain-1")
    proxy = server.proxy(user, password, transport=transport)
    secrets = _secrets(_stored(server, pw_user), "Pw-Plain-1")
    d = "user" + pw_user
    for call in [lambda: proxy.display(d), lambda: proxy.display(d, "password"),
                 lambda: proxy.display(d, "username", "password"),
                 lambda: proxy.list("user", "password")]:
        result = call()
        for secret in secrets:
            assert secret not in transport.last_body, (who, secret)
        _password_checks(result)


@pytest.mark.ours_only
def test_password_not_in_set_result(server, admin):
    uid = admin.create("user", "username=pwset", "password=Pw-Plain-1",
                       "roles=User", "address=pwset@example.com")
    transport = RecordingTransport()
    proxy = server.proxy("admin", ADMIN_PASSWORD, transport=transport)
    result = proxy.set("user" + uid, "password=Pw-Plain-2")
    secrets = _secrets(_stored(server, uid), "Pw-Plain-2")
    for secret in secrets:
        assert secret not in transport.last_body, secret
    _password_checks(result)
    # the new password is in effect
    assert server.proxy("pwset", "Pw-Plain-2").lookup("user", "@current_user") == uid


# --------------------------------------------------------------------------
# Method-layer fixes (per-target expectations)


def test_retire_missing_item(admin, expect):
    # Roundup "succeeds" (and journals a retire of a missing item).
    expected = expect(ours=(1, "<class 'IndexError'>:no such keyword 99"),
                      roundup=None)
    try:
        got = admin.action("retire", "keyword99")
    except xmlrpc.client.Fault as f:
        got = (f.faultCode, f.faultString)
    assert got == expected


def test_create_deduplicates_multilink(admin, expect):
    kid = admin.create("keyword", "name=kw-dup")
    iid = admin.create("issue", "title=dup", "keyword=%s,%s,kw-dup" % (kid, kid))
    # Roundup stores three identical link rows and displays them all.
    assert admin.display("issue" + iid, "keyword") == {
        "keyword": expect(ours=[kid], roundup=[kid, kid, kid])}


@pytest.mark.ours_only
def test_binary_argument_is_prop_equals_bytes(server, admin):
    # A Binary argument is `prop=value` bytes split on the first '='.
    # (Roundup 2.6 faults with "a bytes-like object is required, not 'str'".)
    data = b"\x00\xffbin=x"
    fid = admin.create("file", xmlrpc.client.Binary(b"content=" + data), "name=b.bin")
    got = admin.display("file" + fid, "binary_content")["binary_content"]
    assert isinstance(got, xmlrpc.client.Binary) and got.data == data
    assert server.tracker.file_path("file", fid).read_bytes() == data
    assert admin.display("file" + fid, "name") == {"name": "b.bin"}
