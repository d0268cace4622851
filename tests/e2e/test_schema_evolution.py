"""Schema evolution: a class or property added to schema.toml is added to an
existing database on the next start, as Roundup would add it; removing one never
deletes data."""

import pytest
import xmlrpc.client

from harness import OursTarget, Server

pytestmark = pytest.mark.ours_only


def columns(tracker, table):
    return tracker.columns(table)


def test_add_then_remove_property_and_class(make_tracker):
    target = OursTarget()
    tracker = make_tracker(target)
    schema = tracker.home / "schema.toml"
    original = schema.read_text()
    addition = (
        "\n[class.milestone]\nkey = \"name\"\n"
        "properties = { name = \"String\", due = \"Date\" }\n"
    )
    text = original.replace(
        "status = { type = \"Link\", to = \"status\" }",
        "status = { type = \"Link\", to = \"status\" }\n"
        "estimate = \"Interval\"\nmilestones = { type = \"Multilink\", to = \"milestone\" }",
        1) + addition
    assert text != original + addition, "issue properties not found in schema.toml"
    schema.write_text(text)
    with Server(target, tracker) as srv:
        admin = srv.admin()
        assert ["estimate", "<roundup.hyperdb.Interval>"] in admin.schema()["issue"]
        mid = admin.create("milestone", "name=1.0", "due=2030-01-01")
        iid = admin.create("issue", "title=evolve", "estimate=1d 2:00", "milestones=1.0")
        assert admin.display("issue" + iid, "estimate", "milestones") == {
            "estimate": "<Interval + 1d 2:00>", "milestones": [mid]}
    cols = columns(tracker, "_issue")
    assert "_estimate" in cols and "__estimate_int__" in cols
    assert tracker.sql("select __estimate_int__ from _issue where id=?", (int(iid),)) == [(93600,)]
    assert tracker.sql("select linkid from issue_milestones where nodeid=?", (int(iid),)) == [(int(mid),)]

    # Remove them again: the server starts, the data stays on disk.
    schema.write_text(original)
    with Server(target, tracker) as srv:
        admin = srv.admin()
        assert "milestone" not in admin.schema()
        with pytest.raises(xmlrpc.client.Fault):
            admin.display("issue" + iid, "estimate")
        assert admin.display("issue" + iid, "title") == {"title": "evolve"}
    assert "_estimate" in columns(tracker, "_issue")
    assert tracker.sql("select _name from _milestone") == [("1.0",)]
