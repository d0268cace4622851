"""Hostile XML request documents (issue 6, XML part).

Every attack is POSTed to the running server as admin. The server must answer
within a time bound with either a clean XML-RPC fault (HTTP 200; -32700 for
documents that are not well-formed or use DTDs/entities, -32600 for invalid
XML-RPC or exceeded limits) or a 4xx (413 for oversized bodies); it must then
still answer a normal call promptly; its memory must stay bounded; and when the
attack document wraps a ``create`` call, nothing may have been created.

The limits and fault codes checked here are ours (Roundup's standalone server
has no size limits), hence ``ours_only``.
"""

import base64
import socket
import threading
import time

import pytest

from hostile_util import (
    RssWatch,
    _attack_counter,  # noqa: F401 - autouse fixture (attack counter)
    assert_healthy,
    assert_no_leak,
    call_body,
    parse_answer,
    post,
    proxy,
    wrap_params,
)

pytestmark = pytest.mark.ours_only

PARSE = -32700
INVALID = -32600
MB = 1 << 20


def create_kw(name, extra=b""):
    """A create('keyword', 'name=<name>') call as bytes."""
    return call_body("create", "keyword", "name=" + name)


def kw_exists(server, name):
    return name in proxy(server).list("keyword")


def attack(server, body, codes=(PARSE, INVALID), limit=10.0, rss_mb=200,
           statuses=(), marker=None, headers=None):
    """Sends ``body``; checks the answer, the server's health and memory, and
    that ``marker`` (a keyword name the payload would create) does not exist.
    Returns ``(status, fault code or None, fault string or body)``."""
    with RssWatch(server, limit_mb=rss_mb):
        status, _, data, elapsed = post(server, body, timeout=limit + 30,
                                        headers=headers)
    assert elapsed < limit, "answer took %.1f s (limit %s s)" % (elapsed, limit)
    if status == 200:
        ans = parse_answer(data)
        assert ans[0] == "fault", "attack was accepted: %r" % (ans,)
        assert_no_leak(ans[2])
        assert ans[1] in codes, "fault %r, expected code in %r" % (ans[1:], codes)
        result = (status, ans[1], ans[2])
    else:
        assert status in statuses, "HTTP %s %r (expected 200+fault or %r)" % (
            status, data[:200], statuses)
        result = (status, None, data)
    assert_healthy(server)
    if marker is not None:
        assert not kw_exists(server, marker), "payload was executed: %s" % marker
    return result


# --------------------------------------------------------------------------
# DTDs and entities

LOL = b"""<?xml version="1.0"?>
<!DOCTYPE methodCall [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodCall><methodName>create</methodName><params>
<param><value><string>keyword</string></value></param>
<param><value><string>name=&lol9;</string></value></param>
</params></methodCall>"""


def quadratic_blowup():
    ent = b"A" * 50000
    refs = b"&a;" * 50000
    return (b'<?xml version="1.0"?>\n<!DOCTYPE methodCall [<!ENTITY a "' + ent +
            b'">]>\n<methodCall><methodName>create</methodName><params>'
            b"<param><value><string>keyword</string></value></param>"
            b"<param><value><string>name=" + refs +
            b"</string></value></param></params></methodCall>")


def doctype_doc(doctype, name_value="name=&xxe;"):
    return (b'<?xml version="1.0"?>\n' + doctype + b"\n"
            b"<methodCall><methodName>create</methodName><params>"
            b"<param><value><string>keyword</string></value></param>"
            b"<param><value><string>" + name_value.encode() +
            b"</string></value></param></params></methodCall>")


DTD_CASES = {
    "billion_laughs": lambda port: LOL,
    "quadratic_blowup": lambda port: quadratic_blowup(),
    "external_entity_file": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'),
    "external_entity_http": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall [<!ENTITY xxe SYSTEM "http://127.0.0.1:%d/xxe">]>'
        % port),
    "external_dtd": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall SYSTEM "http://127.0.0.1:%d/evil.dtd">' % port,
        "name=xmlhx-extdtd"),
    "public_dtd": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall PUBLIC "-//EVIL//DTD X//EN" '
        b'"http://127.0.0.1:%d/p.dtd">' % port, "name=xmlhx-pubdtd"),
    "parameter_entity": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall [<!ENTITY %% pe SYSTEM '
        b'"http://127.0.0.1:%d/pe.dtd"> %%pe; ]>' % port),
    "parameter_entity_internal": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall [<!ENTITY % pe "<!ENTITY xxe \'pwned\'>"> %pe; ]>'),
    "plain_doctype": lambda port: doctype_doc(
        b"<!DOCTYPE methodCall>", "name=xmlhx-plaindoctype"),
    "internal_entity": lambda port: doctype_doc(
        b'<!DOCTYPE methodCall [<!ENTITY xxe "xmlhx-internal">]>'),
    "undefined_entity": lambda port: doctype_doc(b""),
    "html_entity": lambda port: doctype_doc(b"", "name=xmlhx&nbsp;html"),
}


@pytest.mark.parametrize("case", sorted(DTD_CASES))
def test_dtd_and_entities_refused(server, case):
    # A listener stands in for an attacker's host: the server must never
    # fetch an external DTD or entity.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    try:
        body = DTD_CASES[case](port)
        _, code, text = attack(server, body, codes=(PARSE,), limit=5)
        assert "root:" not in text
        try:
            conn, _ = listener.accept()
            conn.close()
            pytest.fail("the server connected to the external entity URL")
        except socket.timeout:
            pass
    finally:
        listener.close()
    names = proxy(server).list("keyword")
    assert not [n for n in names if "lol" in n or "xmlhx" in n or "pwned" in n
                or "root:" in n or n.startswith("AAAA")], names


def test_control_predefined_entities_and_char_refs(server):
    """Control: the five predefined entities and character references are
    understood (the refusals above are not a blanket refusal of '&')."""
    body = (b"<?xml version='1.0'?><methodCall><methodName>create</methodName>"
            b"<params><param><value><string>keyword</string></value></param>"
            b"<param><value><string>name=xmlok&lt;&gt;&amp;&apos;&quot;&#65;&#x42;"
            b"</string></value></param></params></methodCall>")
    status, _, data, _ = post(server, body)
    assert status == 200
    ans = parse_answer(data)
    assert ans[0] == "ok", ans
    assert proxy(server).display("keyword" + ans[1], "name") == {
        "name": "xmlok<>&'\"AB"}


# --------------------------------------------------------------------------
# Nesting, counts and sizes


def nested_arrays(depth):
    return wrap_params(b"<param><value>" + b"<array><data><value>" * depth +
                       b"<string>x</string>" + b"</value></data></array>" * depth +
                       b"</value></param>")


def nested_structs(depth):
    return wrap_params(b"<param><value>" +
                       b"<struct><member><name>m</name><value>" * depth +
                       b"<int>1</int>" + b"</value></member></struct>" * depth +
                       b"</value></param>")


def nested_unknown(depth):
    return wrap_params(b"<param><value>" + b"<x>" * depth + b"</x>" * depth +
                       b"</value></param>")


def nested_unclosed(depth):
    # Never closed: the parser must not keep an unbounded stack either.
    return wrap_params(b"<param><value>" + b"<array><data><value>" * depth)[:-30]


def many_values(n):
    return wrap_params(b"<param><value><array><data>" + b"<value/>" * n +
                       b"</data></array></value></param>")


def many_params(n):
    return wrap_params(b"<param><value/></param>" * n)


def many_members(n, same_name=False):
    if same_name:
        member = b"<member><name>a</name><value/></member>"
        members = member * n
    else:
        members = b"".join(b"<member><name>m%d</name><value/></member>" % i
                           for i in range(n))
    return wrap_params(b"<param><value><struct>" + members +
                       b"</struct></value></param>")


def big_string(size, tag=b"string"):
    return wrap_params(b"<param><value><" + tag + b">" + b"x" * size + b"</" +
                       tag + b"></value></param>", method="lookup")


def big_base64(decoded_size):
    chunk = base64.b64encode(b"\0" * 3 * 1024)
    n = decoded_size // (3 * 1024) + 1
    return wrap_params(b"<param><value><base64>" + chunk * n +
                       b"</base64></value></param>", method="lookup")


SIZE_CASES = {
    # name: (builder, expected codes, statuses, time limit)
    "nesting_10k_arrays": (lambda: nested_arrays(10_000), (INVALID,), (), 5),
    "nesting_100k_arrays": (lambda: nested_arrays(100_000), (INVALID,), (), 5),
    "nesting_100k_structs": (lambda: nested_structs(100_000), (INVALID,), (), 5),
    "nesting_100k_unknown_tags": (lambda: nested_unknown(100_000),
                                  (INVALID, PARSE), (), 5),
    "nesting_100k_unclosed": (lambda: nested_unclosed(100_000),
                              (INVALID, PARSE), (), 5),
    "nesting_33_just_over_limit": (lambda: nested_arrays(33), (INVALID,), (), 5),
    "million_tiny_values": (lambda: many_values(1_000_000), (INVALID,), (413,), 10),
    "700k_params": (lambda: many_params(700_000), (INVALID,), (413,), 10),
    "300k_struct_members": (lambda: many_members(300_000), (INVALID,), (413,), 10),
    "300k_duplicate_struct_members": (lambda: many_members(300_000, True),
                                      (INVALID,), (413,), 10),
    "15MB_string_over_string_limit": (lambda: big_string(15 * MB),
                                      (INVALID,), (413,), 15),
    "15MB_untyped_value": (lambda: wrap_params(b"<param><value>" + b"y" * (15 * MB) +
                                               b"</value></param>", method="lookup"),
                           (INVALID,), (413,), 15),
    "15MB_methodName": (lambda: b"<methodCall><methodName>" + b"m" * (15 * MB) +
                        b"</methodName></methodCall>", (INVALID,), (413,), 15),
    "15MB_struct_member_name": (lambda: wrap_params(
        b"<param><value><struct><member><name>" + b"n" * (15 * MB) +
        b"</name><value/></member></struct></value></param>"), (INVALID,), (413,), 15),
    "15MB_int_text": (lambda: wrap_params(b"<param><value><int>" + b"1" * (15 * MB) +
                                          b"</int></value></param>"),
                      (INVALID,), (413,), 15),
    "huge_base64_10MB_decoded": (lambda: big_base64(10 * MB), (INVALID,), (413,), 15),
    "huge_comment": (lambda: wrap_params(b"<!--" + b"c" * (15 * MB) + b"-->",
                                         method="nosuchmethod"),
                     (INVALID, PARSE, 1), (413,), 15),
    "huge_whitespace": (lambda: b"<methodCall>" + b" " * (15 * MB) +
                        b"<methodName>nosuchmethod</methodName></methodCall>",
                        (INVALID, PARSE, 1), (413,), 15),
    "huge_cdata": (lambda: wrap_params(b"<param><value><string><![CDATA[" +
                                       b"d" * (15 * MB) + b"]]></string></value></param>",
                                       method="lookup"), (INVALID,), (413,), 15),
    "huge_attribute": (lambda: b'<methodCall a="' + b"v" * (10 * MB) +
                       b'"><methodName>list</methodName></methodCall>',
                       (INVALID, PARSE), (413,), 15),
    "100k_attributes": (lambda: b"<methodCall " +
                        b" ".join(b'a%d="1"' % i for i in range(100_000)) +
                        b"><methodName>list</methodName></methodCall>",
                        (INVALID, PARSE), (413,), 10),
    "100k_namespace_decls": (lambda: b"<methodCall " +
                             b" ".join(b'xmlns:n%d="urn:x%d"' % (i, i)
                                       for i in range(100_000)) +
                             b"><methodName>list</methodName></methodCall>",
                             # namespace declarations are legal XML: the
                             # call may reach list() (arity fault)
                             (INVALID, PARSE, 1), (413,), 10),
    "1MB_element_name": (lambda: b"<methodCall><" + b"e" * MB + b"/></methodCall>",
                         (INVALID, PARSE), (413,), 10),
    "million_entity_refs": (lambda: wrap_params(
        b"<param><value><string>" + b"&amp;" * 3_000_000 +
        b"</string></value></param>", method="lookup"), (INVALID, 1), (413,), 15),
}


@pytest.mark.parametrize("case", list(SIZE_CASES))
def test_size_and_nesting_limits(server, case):
    build, codes, statuses, limit = SIZE_CASES[case]
    body = build()
    attack(server, body, codes=codes, statuses=statuses, limit=limit)


def test_control_values_just_under_limits(server):
    """Control: a 32-deep array and a 7 MiB string are legal documents (the
    server reaches the method, which then faults on the bad argument)."""
    status, _, data, _ = post(server, nested_arrays(31))
    ans = parse_answer(data)
    assert status == 200 and ans[0] == "fault" and ans[1] == 1, ans
    status, _, data, _ = post(server, big_string(7 * MB))
    ans = parse_answer(data)
    assert status == 200 and ans[0] == "fault" and ans[1] == 1, ans[:2]
    assert "TypeError" in ans[2]          # lookup() missing an argument
    assert_healthy(server)


# --------------------------------------------------------------------------
# The 50 MB string: sent for real, while the answer is read concurrently.


def test_50MB_string_is_refused_before_it_is_read(server):
    body = big_string(50 * MB)
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            "Authorization: Basic %s\r\nContent-Length: %d\r\n\r\n"
            % (server.path, base64.b64encode(b"admin:sekrit").decode(),
               len(body))).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sent = [0]

    def sender():
        try:
            sock.sendall(head)
            view = memoryview(body)
            for i in range(0, len(body), 1 << 16):
                sock.sendall(view[i:i + (1 << 16)])
                sent[0] = i
        except OSError:
            pass

    with RssWatch(server, limit_mb=200):
        t0 = time.monotonic()
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        elapsed = time.monotonic() - t0
        sock.close()
        th.join(10)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert elapsed < 5
    assert_healthy(server)


# --------------------------------------------------------------------------
# Scalars


def scalar(tag, text):
    return wrap_params(b"<param><value><string>issue1</string></value></param>"
                       b"<param><value><" + tag + b">" + text + b"</" + tag +
                       b"></value></param>", method="display")


SCALAR_CASES = {
    "int_overflow": scalar(b"int", b"99999999999"),
    "i4_overflow": scalar(b"i4", b"2147483648"),
    "i4_underflow": scalar(b"i4", b"-2147483649"),
    "i8_overflow": scalar(b"i8", b"99999999999999999999"),
    "int_5000_digits": scalar(b"int", b"9" * 5000),
    "int_float_text": scalar(b"int", b"1e3"),
    "int_empty": scalar(b"int", b""),
    "int_double_sign": scalar(b"int", b"+-1"),
    "int_hex": scalar(b"int", b"0x10"),
    "int_with_nul_ref": scalar(b"int", b"1&#0;"),
    "boolean_2": scalar(b"boolean", b"2"),
    "boolean_word": scalar(b"boolean", b"true"),
    "double_garbage": scalar(b"double", b"1.2.3"),
    "double_huge_text": scalar(b"double", b"1" * 5000),
    "base64_invalid": scalar(b"base64", b"!!!!"),
    "base64_bad_padding": scalar(b"base64", b"QUJD="),
    "nil_with_content": scalar(b"nil", b"x"),
}


@pytest.mark.parametrize("case", list(SCALAR_CASES))
def test_bad_scalars(server, case):
    _, code, text = attack(server, SCALAR_CASES[case], codes=(INVALID, PARSE), limit=5)


def test_int_overflow_in_create_creates_nothing(server):
    body = (b"<?xml version='1.0'?><methodCall><methodName>create</methodName>"
            b"<params><param><value><string>keyword</string></value></param>"
            b"<param><value><string>name=xmlhx-intov</string></value></param>"
            b"<param><value><int>99999999999</int></value></param>"
            b"</params></methodCall>")
    attack(server, body, codes=(INVALID,), marker="xmlhx-intov")


# --------------------------------------------------------------------------
# Encoding and characters


def string_doc(raw):
    return (b"<?xml version='1.0'?><methodCall><methodName>create</methodName>"
            b"<params><param><value><string>keyword</string></value></param>"
            b"<param><value><string>name=" + raw +
            b"</string></value></param></params></methodCall>")


CHAR_CASES = {
    "invalid_utf8_ff": b"xmlhx-a\xff\xfe",
    "overlong_utf8": b"xmlhx-b\xc0\xaf",
    "utf8_surrogate": b"xmlhx-c\xed\xa0\x80",
    "truncated_utf8": b"xmlhx-d\xe2\x82",
    "latin1_bytes": b"xmlhx-e caf\xe9",
    "raw_nul": b"xmlhx-f\x00g",
    "nul_char_ref": b"xmlhx-g&#0;",
    "nul_hex_char_ref": b"xmlhx-h&#x0;",
    "control_char_ref": b"xmlhx-i&#x1F;",
    "raw_control_char": b"xmlhx-j\x1b[31m",
    "surrogate_char_ref": b"xmlhx-k&#xD800;",
    "out_of_range_char_ref": b"xmlhx-l&#x110000;",
    "huge_char_ref": b"xmlhx-m&#99999999999999999999;",
    "fffe_char_ref": b"xmlhx-n&#xFFFE;",
    "bare_ampersand": b"xmlhx-o&",
    "bare_lt": b"xmlhx-p<",
}


@pytest.mark.parametrize("case", list(CHAR_CASES))
def test_bad_characters(server, case):
    raw = CHAR_CASES[case]
    marker_prefix = raw[:7].decode("ascii")
    attack(server, string_doc(raw), codes=(PARSE,), limit=5)
    leaked = [n for n in proxy(server).list("keyword")
              if n.startswith(marker_prefix)]
    assert not leaked, leaked


ENCODING_CASES = {
    "declared_utf16_but_utf8": b"<?xml version='1.0' encoding='UTF-16'?>" +
                               string_doc(b"xmlhx-enc1")[21:],
    "unknown_encoding": b"<?xml version='1.0' encoding='X-EVIL-7'?>" +
                        string_doc(b"xmlhx-enc2")[21:],
    "xml_decl_in_middle": b"<methodCall><?xml version='1.0'?><methodName>create"
                          b"</methodName></methodCall>",
    "xml_version_2": b"<?xml version='2.0'?>" + string_doc(b"xmlhx-enc3")[21:],
}


@pytest.mark.parametrize("case", list(ENCODING_CASES))
def test_bad_encodings(server, case):
    body = ENCODING_CASES[case]
    status, _, data, elapsed = post(server, body)
    assert elapsed < 5
    assert status == 200
    ans = parse_answer(data)
    # A parser may legitimately handle some declarations; what matters is a
    # clean answer and no item with a garbled name.
    if ans[0] == "fault":
        assert_no_leak(ans[2])
    assert_healthy(server)


def test_utf16_document_with_bom(server):
    """A real UTF-16 document: decoded correctly or refused cleanly."""
    body = ("<?xml version='1.0' encoding='UTF-16'?>" +
            string_doc("xmlhx-utf16-\u00e9".encode("utf-8"))[21:].decode()
            ).encode("utf-16")
    status, _, data, _ = post(server, body)
    assert status == 200
    ans = parse_answer(data)
    if ans[0] == "ok":
        assert proxy(server).display("keyword" + ans[1], "name") == {
            "name": "xmlhx-utf16-\u00e9"}
    else:
        assert_no_leak(ans[2])
    assert_healthy(server)


# --------------------------------------------------------------------------
# Structure: truncation, trailing junk, unknown tags, method names


def test_every_truncation_of_a_create_is_refused(server):
    """Each proper prefix of a create document must fault, and none may have
    created the item (a half-read document must never be executed)."""
    full = call_body("create", "keyword", "name=xmlhx-trunc")
    with RssWatch(server, limit_mb=50):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        hdr = {"Content-Type": "text/xml",
               "Authorization": "Basic " + base64.b64encode(b"admin:sekrit").decode()}
        t0 = time.monotonic()
        accepted = []
        for n in range(0, len(full) - 1):
            conn.request("POST", server.path, body=full[:n], headers=hdr)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, (n, resp.status)
            ans = parse_answer(data)
            if ans[0] != "fault":
                accepted.append((n, full[:n][-40:], ans))
            else:
                assert ans[1] in (PARSE, INVALID), (n, ans)
        conn.close()
        assert time.monotonic() - t0 < 30
    # Cutting after "</methodCall>" only drops the final newline: that one is
    # complete, and is the only acceptable success.
    complete = full.rstrip()
    assert all(full[:n] == complete for n, _, _ in accepted), accepted[:3]
    names = proxy(server).list("keyword")
    assert names.count("xmlhx-trunc") == len(accepted), (names, accepted)
    assert_healthy(server)


JUNK_CASES = {
    "trailing_text": b"junk",
    "trailing_element": b"<junk/>",
    "second_methodCall": create_kw("xmlhx-second"),
    "trailing_nul": b"\x00",
    "trailing_cdata": b"<![CDATA[x]]>",
    "trailing_close_tag": b"</methodCall>",
    "trailing_partial_tag": b"<",
    "trailing_entity": b"&amp;",
}


@pytest.mark.parametrize("case", list(JUNK_CASES))
def test_trailing_junk_is_refused_and_nothing_runs(server, case):
    body = create_kw("xmlhx-junk-" + case).rstrip() + JUNK_CASES[case]
    attack(server, body, codes=(PARSE, INVALID), limit=5,
           marker="xmlhx-junk-" + case)
    assert not kw_exists(server, "xmlhx-second")


def test_control_trailing_misc_is_fine(server):
    """Control: misc. after the root element is legal XML."""
    body = create_kw("xmlhx-misc").rstrip() + b"\n<!-- c --><?pi x?>\n \t"
    status, _, data, _ = post(server, body)
    assert status == 200
    assert parse_answer(data)[0] == "ok"
    assert kw_exists(server, "xmlhx-misc")


STRUCTURE_CASES = {
    "unknown_value_type": wrap_params(b"<param><value><foo>status</foo></value></param>"),
    "unknown_top_child": b"<methodCall><methodName>list</methodName><evil/>"
                         b"<params/></methodCall>",
    "unknown_in_params": wrap_params(b"<evil/><param><value>status</value></param>"),
    "unknown_in_array": wrap_params(b"<param><value><array><evil/><data/></array>"
                                    b"</value></param>"),
    "unknown_in_struct": wrap_params(b"<param><value><struct><evil/></struct>"
                                     b"</value></param>"),
    "member_without_name": wrap_params(b"<param><value><struct><member><value>1"
                                       b"</value></member></struct></value></param>"),
    "member_without_value": wrap_params(b"<param><value><struct><member><name>a"
                                        b"</name></member></struct></value></param>"),
    "two_values_in_param": wrap_params(b"<param><value>a</value><value>b</value></param>"),
    "param_without_value": wrap_params(b"<param></param>"),
    "two_types_in_value": wrap_params(b"<param><value><string>a</string><int>1</int>"
                                      b"</value></param>"),
    "text_mixed_with_type": wrap_params(b"<param><value>x<string>a</string>"
                                        b"</value></param>"),
    "element_in_string": wrap_params(b"<param><value><string>a<b/>c</string>"
                                     b"</value></param>"),
    "wrong_root": b"<methodResponse><params><param><value>1</value></param>"
                  b"</params></methodResponse>",
    "root_not_xmlrpc": b"<html><body>hi</body></html>",
    "two_methodNames": b"<methodCall><methodName>list</methodName><methodName>"
                       b"create</methodName></methodCall>",
    "two_params_blocks": b"<methodCall><methodName>list</methodName><params/>"
                         b"<params/></methodCall>",
    "params_before_name": b"<methodCall><params/><methodName>list</methodName>"
                          b"</methodCall>",
    "missing_methodName": b"<methodCall><params/></methodCall>",
    "empty_methodName": b"<methodCall><methodName></methodName><params/></methodCall>",
    "self_closed_methodName": b"<methodCall><methodName/></methodCall>",
    "long_methodName": b"<methodCall><methodName>" + b"a" * 100_000 +
                       b"</methodName></methodCall>",
    "element_in_methodName": b"<methodCall><methodName>li<b/>st</methodName>"
                             b"</methodCall>",
    "unbound_prefix": b"<methodCall><methodName>list</methodName><params>"
                      b"<param><value><e:string>status</e:string></value></param>"
                      b"</params></methodCall>",
    "empty_body": b"",
    "whitespace_body": b"   \r\n\t ",
    "json_body": b'{"method": "list", "params": ["status"]}',
    "binary_garbage": bytes(range(256)) * 16,
    "mismatched_tags": b"<methodCall><methodName>list</methodCall></methodName>",
    "unclosed_root": b"<methodCall><methodName>list</methodName>",
    "lone_close": b"</methodCall>",
    "comment_only": b"<!-- nothing -->",
    "pi_only": b"<?xml version='1.0'?>",
}


@pytest.mark.parametrize("case", list(STRUCTURE_CASES))
def test_malformed_structure(server, case):
    attack(server, STRUCTURE_CASES[case], codes=(PARSE, INVALID), limit=5)


METHOD_NAME_CASES = {
    "nul_in_methodName": b"<methodCall><methodName>li\x00st</methodName></methodCall>",
    "newline_in_methodName": b"<methodCall><methodName>list\nschema</methodName>"
                             b"<params><param><value>status</value></param></params>"
                             b"</methodCall>",
    "padded_methodName": b"<methodCall><methodName> list </methodName><params>"
                         b"<param><value>status</value></param></params></methodCall>",
    "unicode_methodName": "<methodCall><methodName>l\u0131st</methodName>"
                          "</methodCall>".encode(),
    "dotted_methodName": b"<methodCall><methodName>list.__class__</methodName>"
                         b"</methodCall>",
    "blank_methodName": b"<methodCall><methodName>  </methodName><params/></methodCall>",
    # xml-rs matches local names: harmless, the call reaches list().
    "namespaced_root": b"<x:methodCall xmlns:x='urn:evil'><x:methodName>list"
                       b"</x:methodName></x:methodCall>",
    # dateTime text is kept as text (like Python's xmlrpc.client.DateTime).
    "datetime_garbage": wrap_params(b"<param><value><dateTime.iso8601>99999999T99:99:99"
                                    b"</dateTime.iso8601></value></param>"),
}


@pytest.mark.parametrize("case", list(METHOD_NAME_CASES))
def test_odd_method_names_fault(server, case):
    # Either refused by the decoder or "method ... is not supported".
    attack(server, METHOD_NAME_CASES[case], codes=(PARSE, INVALID, 1, -32601),
           limit=5)


def test_gzip_wrapped_nesting_bomb(server):
    """The decoder limits apply to gunzipped bodies as well."""
    import gzip
    body = gzip.compress(nested_arrays(100_000))
    attack(server, body, codes=(INVALID,), limit=5,
           headers={"Content-Encoding": "gzip"})
