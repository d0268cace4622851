"""The sample session and the "advanced client" of Roundup's XML-RPC doc.

Source: /work/shared/roundup-xmlrpc-doc.txt (doc/xmlrpc.txt).  The tracker is
set up like the doc's demo tracker, through the API as admin: users
admin/admin and demo/demo (User), issue1 with priority 1 and status 2.
The advanced client uses ``xmlrpc.client.Transport`` over plain http (the
doc says to do so for http; the SafeTransport/TLS variant needs a TLS proxy).
"""

import xmlrpc.client as xmlrpclib

import pytest

from harness import ADMIN_PASSWORD, Server, fault


@pytest.fixture
def demo(target, make_tracker):
    """A fresh tracker set up like the doc's demo tracker."""
    with Server(target, make_tracker()) as srv:
        setup = srv.proxy("admin", ADMIN_PASSWORD)
        setup.set("user1", "password=admin")
        admin = srv.proxy("admin", "admin")
        assert admin.create("user", "username=demo", "password=demo",
                            "roles=User", "address=demo@example.com") == "3"
        assert admin.create("issue", "title=yes, it works", "priority=1",
                            "status=2") == "1"
        yield srv


def test_sample_session(demo):
    roundup_server = xmlrpclib.ServerProxy(demo.url_for("admin", "admin"),
                                           allow_none=True)
    schema = roundup_server.schema()
    assert ["username", "<roundup.hyperdb.String>"] in schema["user"]
    assert "issue" in schema
    assert roundup_server.list("user") == ["admin", "anonymous", "demo"]
    assert roundup_server.list("issue", "id") == ["1"]
    issue1 = roundup_server.display("issue1")
    assert issue1["assignedto"] is None
    assert issue1["files"] == []
    assert issue1["title"] == "yes, it works"
    assert roundup_server.display("issue1", "priority", "status") == {
        "priority": "1", "status": "2"}
    # The doc shows no output for set(); it returns the changed properties.
    assert roundup_server.set("issue1", "status=3") == {"status": "3"}
    assert roundup_server.display("issue1", "status") == {"status": "3"}
    assert roundup_server.create("issue", "title='another bug'", "status=2") == "2"
    # The quotes are part of the title (no shell-style unquoting).
    assert roundup_server.display("issue2", "title") == {"title": "'another bug'"}
    assert roundup_server.filter("user", None, {"username": "adm"}) == ["1"]
    assert roundup_server.filter("user", ["1", "2"], {"username": "adm"}) == ["1"]
    assert roundup_server.filter("user", ["2"], {"username": "adm"}) == []
    assert roundup_server.filter("user", [], {"username": "adm"}) == []
    assert roundup_server.lookup("user", "admin") == "1"


def test_sample_session_as_demo_user(demo):
    # The demo user (User role) may list users but not their addresses.
    demo_user = xmlrpclib.ServerProxy(demo.url_for("demo", "demo"), allow_none=True)
    assert demo_user.list("user") == ["admin", "anonymous", "demo"]
    assert demo_user.list("user", "address") == ["demo@example.com"]
    assert demo_user.lookup("user", "@current_user") == "3"


def test_advanced_client(demo):
    # The doc's code with SafeTransport replaced by Transport and https by
    # http.  Note that it sends Content-Type twice (Transport.send_request
    # already adds one) and adds Referer/Origin/X-Requested-With headers.
    hostname = "127.0.0.1:%d" % demo.port
    path = "/demo"
    user_pw = "admin:admin"

    class SpecialTransport(xmlrpclib.Transport):

        def send_content(self, connection, request_body):

            connection.putheader("Referer", "https://%s%s/" % (hostname, path))
            connection.putheader("Origin", "https://%s" % hostname)
            connection.putheader("X-Requested-With", "XMLHttpRequest")

            connection.putheader("Content-Type", "text/xml")
            connection.putheader("Content-Length", str(len(request_body)))
            connection.endheaders()
            if request_body:
                connection.send(request_body)

    roundup_server = xmlrpclib.ServerProxy(
        'http://%s@%s%s/xmlrpc' % (user_pw, hostname, path),
        transport=SpecialTransport(),
        verbose=False,
        allow_none=True)

    schema = roundup_server.schema()
    assert sorted(schema) == ["file", "issue", "keyword", "msg", "priority",
                              "query", "status", "user"]
    assert roundup_server.display('user2', 'username') == {"username": "anonymous"}
    assert roundup_server.display('issue1', 'status') == {"status": "2"}
    assert roundup_server.filter('user', ['1', '2', '3'], {'username': 'demo'}) == ["3"]

    # this will fail with a fault
    assert fault(roundup_server.filter, 'usr', ['0', '2', '3'],
                 {'username': 'demo'}) == (
        1, "<class 'KeyError'>:'There is no class called \"usr\"'")
