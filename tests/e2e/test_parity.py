"""Roundup parity details checked on every target (ours and, with
``E2E_TARGET=roundup``, Roundup 2.6.0 itself)."""

import re

from harness import Server

# roundupdb.send_message: "<%s.%s.%s%s@%s>" % (time.time(),
#     b32encode(token_bytes(10)), classname, issueid, MAIL_DOMAIN)
MESSAGE_ID = re.compile(r"^<\d+\.\d+\.[A-Z2-7]{16}\.issue(\d+)@example\.com>$")


def test_nosy_message_id_has_roundups_form(target, make_tracker):
    with Server(target, make_tracker()) as srv:
        admin = srv.admin()
        admin.create("user", "username=pat", "password=x", "roles=User",
                     "address=pat@example.com")
        msg = admin.create("msg", "content=first words", "author=1")
        issue = admin.create("issue", "title=mail me", "nosy=pat",
                             "messages=%s" % msg)
        mid = admin.display("msg" + msg, "messageid")["messageid"]
        m = MESSAGE_ID.match(mid)
        assert m, mid
        assert m.group(1) == issue
        # A second message gets its own id.
        msg2 = admin.create("msg", "content=more words", "author=1")
        admin.set("issue" + issue, "messages=%s,%s" % (msg, msg2))
        mid2 = admin.display("msg" + msg2, "messageid")["messageid"]
        assert MESSAGE_ID.match(mid2) and mid2 != mid
