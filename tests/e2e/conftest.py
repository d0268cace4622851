"""pytest fixtures for the end-to-end tests of roundup-xmlrpc-server.

Run (from the repository root, after ``cargo build``)::

    python3 -m pip install -r tests/requirements.txt
    python3 -m pytest tests/e2e -q                      # our binary
    E2E_TARGET=roundup python3 -m pytest tests/e2e -q   # Roundup 2.6.0

Target selection: ``--target=ours`` (default) drives the Rust binary
(``RXS_BIN`` or ``target/debug/roundup-xmlrpc-server``; it is never built
here), ``--target=roundup`` or ``E2E_TARGET=roundup`` drives Roundup 2.6.0's
real standalone XML-RPC server instead, which is how the tests themselves are
validated.

Backend selection: ``--backend=sqlite`` (default) or ``--backend=postgresql``
(or ``E2E_BACKEND``): the trackers of every test (ours and Roundup's) live in
that backend; for PostgreSQL a private cluster is started once per session
(scripts/pg-cluster, Unix socket only) and each tracker gets its own database,
cloned from a template database.

Markers: ``ours_only`` tests check deliberate differences of our server and
are skipped for Roundup; ``roundup_only`` tests check standalone-server
behaviour we deliberately do not reproduce and are skipped for ours.
``sqlite_only`` / ``postgresql_only`` tests are about one backend's files or
server and are deselected when the run uses the other.

Trackers: ``server`` is module-scoped and set up as in the checklist of
roundup-reference.md section 14 (user ``joe`` = id 3 created by admin);
``fresh_server`` is the same but per test, for tests that depend on ids or
on the absence of other data.
"""

import os

import pytest

from harness import (
    ADMIN_PASSWORD,
    TRACKER_NAME,
    OursTarget,
    RoundupTarget,
    Server,
    checklist_setup,
)


def pytest_addoption(parser):
    parser.addoption(
        "--target", choices=("ours", "roundup"), default=None,
        help="server to test: ours (the Rust binary, default) or roundup "
             "(Roundup 2.6.0's standalone server); env E2E_TARGET")
    add_backend_option(parser)


def add_backend_option(parser):
    parser.addoption(
        "--backend", choices=("sqlite", "postgresql"), default=None,
        help="tracker database backend: sqlite (default) or postgresql "
             "(a private cluster is started); env E2E_BACKEND")


def backend_name(config):
    name = config.getoption("--backend") or os.environ.get("E2E_BACKEND") or "sqlite"
    if name not in ("sqlite", "postgresql"):
        raise pytest.UsageError("E2E_BACKEND must be 'sqlite' or 'postgresql', not %r" % name)
    return name


def target_name(config):
    name = config.getoption("--target") or os.environ.get("E2E_TARGET") or "ours"
    if name not in ("ours", "roundup"):
        raise pytest.UsageError("E2E_TARGET must be 'ours' or 'roundup', not %r" % name)
    return name


def pytest_configure(config):
    # The harness reads the backend from the environment (also in threads).
    os.environ["E2E_BACKEND"] = backend_name(config)
    config.addinivalue_line(
        "markers", "sqlite_only: about the sqlite backend's files; deselected "
                   "when the trackers are on PostgreSQL")
    config.addinivalue_line(
        "markers", "postgresql_only: needs trackers on PostgreSQL; deselected "
                   "on the sqlite backend")
    config.addinivalue_line(
        "markers", "ours_only: deliberate difference of our server; skipped "
                   "when testing Roundup")
    config.addinivalue_line(
        "markers", "roundup_only: standalone-Roundup behaviour our server "
                   "deliberately changes; skipped when testing ours")


def pytest_report_header(config):
    return "e2e target: %s, backend: %s" % (target_name(config), backend_name(config))


def pytest_collection_modifyitems(config, items):
    # Tests of the other target's (or backend's) behaviour are deselected, not
    # skipped: they say nothing about this run, and a run must not pass by
    # skipping. E2E_IGNORE_MARKERS=1 runs ours_only tests against Roundup (and
    # vice versa), to check that they detect the behaviour they are meant to.
    name = target_name(config)
    other = "ours_only" if name == "roundup" else "roundup_only"
    if os.environ.get("E2E_IGNORE_MARKERS") == "1":
        other = None
    other_backend = ("sqlite_only" if backend_name(config) == "postgresql"
                     else "postgresql_only")
    keep, drop = [], []
    for item in items:
        unwanted = ((other and item.get_closest_marker(other))
                    or item.get_closest_marker(other_backend))
        (drop if unwanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# --------------------------------------------------------------------------
# Targets and trackers


@pytest.fixture(scope="session")
def reference_target(tmp_path_factory):
    """Roundup 2.6.0's standalone server (skips if roundup is missing)."""
    target = RoundupTarget(tmp_path_factory.mktemp("roundup-template"))
    target.check()
    return target


@pytest.fixture(scope="session")
def ours_target():
    """Our binary (fails with a hint to run `cargo build` if it is missing)."""
    target = OursTarget()
    target.check()
    return target


@pytest.fixture(scope="session")
def target(request):
    """The target selected with --target / E2E_TARGET."""
    if target_name(request.config) == "roundup":
        return request.getfixturevalue("reference_target")
    return request.getfixturevalue("ours_target")


@pytest.fixture(scope="session")
def is_ours(target):
    return target.name == "ours"


@pytest.fixture(scope="session")
def expect(target):
    """Pick a per-target expectation: ``expect(ours=..., roundup=...)``.

    Used where our server deliberately differs from Roundup and Roundup's
    value is still worth checking (so that the test is validated)."""
    def pick(*, ours, roundup):
        return ours if target.name == "ours" else roundup
    return pick


@pytest.fixture(scope="session")
def make_tracker(target, tmp_path_factory):
    """Factory: a new tracker directory named ``demo`` (not served)."""
    def make(t=None):
        t = t or target
        return t.make_tracker(tmp_path_factory.mktemp("tracker") / TRACKER_NAME)
    return make


@pytest.fixture(scope="module")
def server(target, make_tracker):
    """Module-wide server on a checklist tracker (admin=1, anonymous=2, joe=3)."""
    with Server(target, make_tracker()) as srv:
        checklist_setup(srv)
        yield srv


@pytest.fixture
def fresh_server(target, make_tracker):
    """A server on a brand-new checklist tracker, for order-sensitive tests."""
    with Server(target, make_tracker()) as srv:
        checklist_setup(srv)
        yield srv


@pytest.fixture
def pristine_server(target, make_tracker):
    """A server on a brand-new tracker without joe."""
    with Server(target, make_tracker()) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server):
    return server.proxy("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def joe(server):
    return server.proxy("joe", "secret")


@pytest.fixture(scope="module")
def anon(server):
    return server.proxy()
