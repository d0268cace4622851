#!/usr/bin/env python3
"""Convert an existing Roundup tracker's schema to roundup-xmlrpc-server's schema.toml.

Usage: convert-schema.py TRACKER_DIR [--output FILE] [--allow-unconverted]

The tracker is loaded with the installed Roundup (``roundup.instance.open`` and
``tracker.open('admin')``), exactly as Roundup loads it: ``schema.py``, the
extensions and the detectors run. What they set up is then read back and written
as schema.toml (format: tracker-template/README.md):

* classes (Class / FileClass / IssueClass), their properties in definition order
  with type and options, key, and labelprop / orderprop when set explicitly;
* roles and every permission given to a role, as ``[[grant]]`` entries, except
  the ten global Admin permissions our loader adds by itself;
* check functions: the known ones of Roundup's templates (own_record,
  view_query, edit_query, may_edit_file), recognised by name *and* source, become
  check expressions;
* detectors: a file in ``detectors/`` whose code is one of Roundup's template
  detectors (compared with every copy the installed Roundup ships, ``init``
  aside) and whose registrations are ones a built-in can make becomes a
  ``[detectors]`` entry naming the classes it runs on (``nosyreaction =
  { classes = ["bug", "task"] }``; ``chatting_requires_two_users`` from
  detectors/config.ini); any other detector file is listed in ``python = [...]``
  so that the daemon runs it as it is;
* extensions (``extensions/*.py``) that only register web template utilities and
  web actions are reported as not needed by the XML-RPC daemon.

Anything that cannot be expressed (an unknown check function, a detector
registered from outside ``detectors/``, an extension registering an action the
XML-RPC ``action`` method would run, a property option we do not support, ...)
is reported on stderr as ``file:line: message`` and makes the script exit with
status 1 without writing anything, unless --allow-unconverted is given. A grant
whose check cannot be converted is left out (never turned into an unconditional
grant). The database is not touched: the schema is executed against a scratch
sqlite database in a temporary directory. Roundup's HTML template loader is not
started (the tracker's template engine, e.g. jinja2, need not be installed).

Exit status: 0 converted, 1 something could not be converted (see stderr),
2 the tracker could not be loaded or the output not written.
"""

import argparse
import ast
import glob
import os
import shutil
import sys
import tempfile
import textwrap

# The ten global permissions Roundup's core gives the Admin role; our loader adds
# them implicitly (src/schema/grants.rs, implicit_grants()).
IMPLICIT_ADMIN = ("Create", "Edit", "Restore", "Retire", "View", "Web Access",
                  "Rest Access", "Xmlrpc Access", "Web Roles", "Email Access")
IMPLICIT_DESCRIPTIONS = {
    "Create": "User may create everything",
    "Edit": "User may edit everything",
    "Restore": "User may restore everything",
    "Retire": "User may retire everything",
    "View": "User may view everything",
    "Web Access": "User may access the web interface",
    "Rest Access": "User may access the rest interface",
    "Xmlrpc Access": "User may access the xmlrpc interface",
    "Web Roles": "User may manipulate user Roles through the web",
    "Email Access": "User may use the email interface",
}
BUILTIN_ROLES = {"user": "User", "admin": "Admin", "anonymous": "Anonymous"}

# Check functions of Roundup's templates: name -> (canonical source, the class
# the function reads or None for any class, our check expression).
KNOWN_CHECKS = {
    "own_record": ('''
def own_record(db, userid, itemid):
    return userid == itemid
''', None, "id == $user"),
    "view_query": ('''
def view_query(db, userid, itemid):
    private_for = db.query.get(itemid, 'private_for')
    if not private_for: return True
    return userid == private_for
''', "query", "private_for is empty or private_for == $user"),
    "edit_query": ('''
def edit_query(db, userid, itemid):
    return userid == db.query.get(itemid, 'creator')
''', "query", "creator == $user"),
    "may_edit_file": ('''
def may_edit_file(db, userid, itemid):
    return userid == db.file.get(itemid, "creator")
''', "file", "creator == $user"),
}

# The functions of Roundup's template detectors that we have built-ins for:
# function name -> (our [detectors] key, the (kind, event) pairs that key
# registers it for on each of its classes, all at Roundup's default priority 100).
BUILTIN_FUNCTIONS = {
    "presetunread": ("statusauditor", {("audit", "create")}),
    "chatty": ("statusauditor", {("audit", "set")}),
    "updatenosy": ("nosyreaction", {("audit", "create"), ("audit", "set")}),
    "nosyreaction": ("nosyreaction", {("react", "create"), ("react", "set")}),
    "summarygenerator": ("messagesummary", {("audit", "create")}),
    "audit_user_fields": ("userauditor", {("audit", "create"), ("audit", "set")}),
    "audit_html_files": ("no_texthtml", {("audit", "create"), ("audit", "set")}),
    "preset_new": ("preset_new", {("audit", "create")}),
    "init_severity": ("init_severity", {("audit", "create")}),
    "patches_text_plain": ("patches_text_plain", {("audit", "create")}),
    "patches_keyword": ("patches_keyword", {("audit", "create"), ("audit", "set")}),
}
# Our [detectors] keys in their order, with the classes `true` stands for.
BUILTIN_DEFAULT_CLASSES = {
    "statusauditor": ["issue"],
    "nosyreaction": ["issue"],
    "messagesummary": ["msg"],
    "userauditor": ["user"],
    "no_texthtml": ["file"],
    "preset_new": ["bug"],
    "init_severity": ["bug"],
    "patches_text_plain": ["file"],
    "patches_keyword": ["bug"],
}
DETECTOR_ORDER = tuple(BUILTIN_DEFAULT_CLASSES)


class Converter:
    """Loads one tracker and collects what it sets up, with source locations."""

    def __init__(self, home):
        self.home = os.path.realpath(home)
        self.problems = []          # (location, message): not converted
        self.notes = []             # (location, message): informational
        self.role_names = {}        # lower-case name -> name as written
        self.role_order = []
        self.assignments = []       # (lower role name, Permission, location)
        self.class_locations = {}   # class name -> location
        self.extension_registrations = {}  # extension file -> [(kind, name, web only)]
        self.registrations = []     # (file, location, class, kind, event, priority, fn)

    # -- locations ----------------------------------------------------------

    def caller_location(self):
        """file:line of the innermost frame running tracker code."""
        f = sys._getframe(1)
        while f is not None:
            fn = os.path.realpath(f.f_code.co_filename)
            if fn.startswith(self.home + os.sep):
                return "%s:%d" % (self.rel(fn), f.f_lineno)
            f = f.f_back
        return "schema.py"

    def rel(self, path):
        path = os.path.realpath(path)
        if path.startswith(self.home + os.sep):
            return os.path.relpath(path, self.home)
        return path

    def function_location(self, fn):
        import inspect
        try:
            target = getattr(fn, "__wrapped__", fn)
            src = inspect.getsourcefile(target)
            _, line = inspect.getsourcelines(target)
            return "%s:%d" % (self.rel(src), line)
        except (TypeError, OSError):
            code = getattr(fn, "__code__", None)
            if code is not None:
                return "%s:%d" % (self.rel(code.co_filename), code.co_firstlineno)
            return repr(fn)

    def problem(self, location, message):
        self.problems.append((location, message))

    def note(self, location, message):
        self.notes.append((location, message))

    # -- loading ------------------------------------------------------------

    def registering_file(self):
        """(file, file:line) of the detector file whose init() is running: the
        outermost frame in the tracker's detectors/ directory, else the
        innermost frame in tracker code."""
        detectors = os.path.join(self.home, "detectors") + os.sep
        f = sys._getframe(2)
        found = None
        while f is not None:
            fn = os.path.realpath(f.f_code.co_filename)
            if fn.startswith(detectors):
                found = (self.rel(fn), "%s:%d" % (self.rel(fn), f.f_lineno))
            f = f.f_back
        if found is not None:
            return found
        loc = self.caller_location()
        return loc.split(":")[0], loc

    def load(self):
        import roundup.instance
        from roundup import backends, hyperdb, security
        from roundup.backends import rdbms_common
        from roundup.cgi import templating

        conv = self
        orig_add_role = security.Security.addRole
        orig_add_to_role = security.Security.addPermissionToRole
        orig_addclass = rdbms_common.Database.addclass
        orig_audit = hyperdb.Class.audit
        orig_react = hyperdb.Class.react
        orig_get_loader = templating.get_loader

        def recorder(kind, orig):
            def register(cl, event, detector, priority=100):
                where, loc = conv.registering_file()
                conv.registrations.append((where, loc, cl.classname, kind, event,
                                           priority, detector))
                return orig(cl, event, detector, priority)
            return register

        def add_role(sec, **propspec):
            name = propspec.get("name", "")
            if name.lower() not in conv.role_names:
                conv.role_order.append(name.lower())
            conv.role_names[name.lower()] = BUILTIN_ROLES.get(name.lower(), name)
            return orig_add_role(sec, **propspec)

        def add_to_role(sec, rolename, permission, classname=None,
                        properties=None, check=None, props_only=None):
            if not isinstance(permission, security.Permission):
                permission = sec.getPermission(permission, classname,
                                               properties, check, props_only)
            conv.assignments.append((rolename.lower(), permission,
                                     conv.caller_location()))
            return orig_add_to_role(sec, rolename, permission)

        def addclass(db, cl):
            conv.class_locations.setdefault(cl.classname, conv.caller_location())
            return orig_addclass(db, cl)

        security.Security.addRole = add_role
        security.Security.addPermissionToRole = add_to_role
        rdbms_common.Database.addclass = addclass
        hyperdb.Class.audit = recorder("audit", orig_audit)
        hyperdb.Class.react = recorder("react", orig_react)
        # The HTML templates do not matter to XML-RPC, and their engine (jinja2)
        # may not be installed.
        templating.get_loader = lambda *args, **kw: None
        scratch = tempfile.mkdtemp(prefix="convert-schema-")
        try:
            tracker = roundup.instance.open(self.home)
            self.backend_name = tracker.config.RDBMS_BACKEND
            # Never touch the tracker's database: run the schema against a
            # scratch sqlite database (any backend's schema is the same).
            tracker.config.DATABASE = scratch
            tracker.backend = backends.get_backend("sqlite")
            self.record_extensions(tracker)
            db = tracker.open("admin")
            try:
                self.read(db)
            finally:
                db.close()
        finally:
            security.Security.addRole = orig_add_role
            security.Security.addPermissionToRole = orig_add_to_role
            rdbms_common.Database.addclass = orig_addclass
            hyperdb.Class.audit = orig_audit
            hyperdb.Class.react = orig_react
            templating.get_loader = orig_get_loader
            shutil.rmtree(scratch, ignore_errors=True)

    def record_extensions(self, tracker):
        """Record what each extension registers (extensions are not run by the
        daemon): web template utilities, and actions with whether they are
        web-only (Roundup's XML-RPC `action` runs only the others)."""
        conv = self
        from roundup import actions

        def register_action(name, action, *args, **kw):
            loc = conv.caller_location()
            web_only = not (isinstance(action, type)
                            and issubclass(action, actions.Action))
            conv.extension_registrations.setdefault(loc.split(":")[0], []).append(
                ("registerAction", name, web_only))

        def register_util(name, *args, **kw):
            loc = conv.caller_location()
            conv.extension_registrations.setdefault(loc.split(":")[0], []).append(
                ("registerUtil", name, True))

        tracker.registerAction = register_action
        tracker.registerUtil = register_util
        ext_dir = os.path.join(self.home, "extensions")
        for path in sorted(glob.glob(os.path.join(ext_dir, "*.py"))):
            self.extension_registrations.setdefault(self.rel(path), [])

    def report_extensions(self):
        for ext, regs in sorted(self.extension_registrations.items()):
            what = ", ".join("%s %r" % (kind, name) for kind, name, _ in regs)
            rpc = [name for kind, name, web_only in regs if not web_only]
            if rpc:
                self.problem("%s:1" % ext, "tracker extension (%s): action%s %s "
                             "would be run by Roundup's XML-RPC action method; "
                             "extensions are not supported"
                             % (what, "s" if len(rpc) > 1 else "",
                                ", ".join(repr(n) for n in rpc)))
            elif regs:
                self.note("%s:1" % ext, "tracker extension (%s): web templating "
                          "and web actions only; not needed by the XML-RPC daemon"
                          % what)
            else:
                self.note("%s:1" % ext, "tracker extension registering nothing "
                          "that was seen; the XML-RPC daemon does not run extensions")

    # -- reading ------------------------------------------------------------

    def read(self, db):
        self.db = db
        self.classes = self.read_classes(db)
        self.roles = [(self.role_names.get(r, r), db.security.role[r].description)
                      for r in self.role_order if r in db.security.role]
        for r in db.security.role:
            if r not in self.role_order:
                self.roles.append((BUILTIN_ROLES.get(r, r), db.security.role[r].description))
        self.grants = self.read_grants(db)
        self.detectors, self.python_detectors = self.read_detectors(db)
        self.report_extensions()
        if os.path.isfile(os.path.join(self.home, "interfaces.py")):
            self.note("interfaces.py:1", "interfaces.py customises the web and mail "
                      "interfaces only; it does not apply to XML-RPC")
        if self.backend_name != "sqlite":
            self.note("config.ini", "[rdbms] backend is %r: roundup-xmlrpc-server "
                      "serves sqlite databases only" % self.backend_name)

    def read_classes(self, db):
        from roundup import hyperdb, roundupdb
        from roundup.backends import rdbms_common

        out = []
        for cn, cl in db.classes.items():
            loc = self.class_locations.get(cn, "schema.py")
            is_issue = isinstance(cl, roundupdb.IssueClass)
            is_file = isinstance(cl, hyperdb.FileClass)
            if is_issue and is_file:
                self.problem(loc, "class %r is both a FileClass and an IssueClass; "
                             "written as IssueClass" % cn)
            kind = "IssueClass" if is_issue else "FileClass" if is_file else "Class"
            base = {"Class": rdbms_common.Class, "FileClass": rdbms_common.FileClass,
                    "IssueClass": rdbms_common.IssueClass}[kind]
            if not type(cl).__module__.startswith("roundup.backends."):
                self.problem(loc, "class %r uses its own implementation %s.%s (a "
                             "subclass of %s); its overridden methods are not "
                             "converted" % (cn, type(cl).__module__,
                                            type(cl).__name__, base.__name__))
            if not cl.do_journal:
                self.problem(loc, "class %r has journalling disabled "
                             "(disableJournalling); not supported" % cn)
            if is_file and getattr(cl, "default_mime_type", "text/plain") != "text/plain":
                self.problem(loc, "class %r: default_mime_type %r is not supported "
                             "(text/plain is used)" % (cn, cl.default_mime_type))
            props = []
            for pn, prop in cl.properties.items():
                spec = self.read_property(cn, pn, prop, loc)
                if spec is not None:
                    props.append((pn, spec))
            out.append({
                "name": cn,
                "kind": kind,
                "key": cl.key or None,
                "labelprop": getattr(cl, "_labelprop", None),
                "orderprop": getattr(cl, "_orderprop", None),
                "properties": props,
                "location": loc,
            })
        return out

    def read_property(self, cn, pn, prop, loc):
        """(type name, options dict) of one property, or None if left out."""
        from roundup import hyperdb

        where = "property %s.%s" % (cn, pn)
        if prop.computed:
            self.problem(loc, "%s is computed (a reverse Multilink, rev_multilink "
                         "/ rev_property); not supported, left out" % where)
            return None
        types = [("Multilink", hyperdb.Multilink), ("Link", hyperdb.Link),
                 ("String", hyperdb.String), ("Password", hyperdb.Password),
                 ("Date", hyperdb.Date), ("Interval", hyperdb.Interval),
                 ("Boolean", hyperdb.Boolean), ("Number", hyperdb.Number),
                 ("Integer", hyperdb.Integer)]
        ty = next((n for n, t in types if isinstance(prop, t)), None)
        if ty is None:
            self.problem(loc, "%s has the unknown type %s; left out"
                         % (where, type(prop).__name__))
            return None
        opts = {}
        if ty in ("Link", "Multilink"):
            opts["to"] = prop.classname
            if not prop.do_journal:
                opts["do_journal"] = False
            if not getattr(prop, "try_id_parsing", True):
                self.problem(loc, "%s: try_id_parsing='no' is not supported "
                             "(ids are always accepted)" % where)
            if getattr(prop, "rev_multilink", None):
                self.problem(loc, "%s: rev_multilink=%r (a reverse Multilink on "
                             "class %r) is not supported"
                             % (where, prop.rev_multilink, prop.classname))
            if getattr(prop, "msg_header_property", None):
                self.problem(loc, "%s: msg_header_property=%r (nosy mail header) is "
                             "not supported" % (where, prop.msg_header_property))
        if ty == "String" and prop.indexme:
            opts["indexme"] = True
        if ty == "Password" and getattr(prop, "scheme", None):
            self.problem(loc, "%s: Password(scheme=%r) is not supported (config.ini "
                         "[xmlrpc_server] password_default_scheme applies)"
                         % (where, prop.scheme))
        if ty == "Date":
            if getattr(prop, "_offset", None) is not None:
                self.problem(loc, "%s: Date(offset=%r) is not supported (the user's "
                             "time zone applies)" % (where, prop._offset))
            if not getattr(prop, "display_time", True) or getattr(prop, "format", None):
                self.note(loc, "%s: display_time / format only affect HTML "
                          "rendering; ignored" % where)
        default = prop.get_default_value()
        if default is not None and not (ty == "Multilink" and default == []):
            self.problem(loc, "%s: default_value=%r is not supported"
                         % (where, default))
        if prop.quiet:
            opts["quiet"] = True
        if prop.required:
            opts["required"] = True
        return (ty, opts)

    # -- permissions --------------------------------------------------------

    def read_grants(self, db):
        """Role assignments grouped by Permission, in assignment order."""
        seen = set()
        pairs = []
        for role, perm, loc in self.assignments:
            if (role, id(perm)) not in seen:
                seen.add((role, id(perm)))
                pairs.append((role, perm, loc))
        # Anything a role holds that did not go through addPermissionToRole.
        for rn, role in db.security.role.items():
            for perm in role.permission_list():
                if (rn, id(perm)) not in seen:
                    seen.add((rn, id(perm)))
                    pairs.append((rn, perm, "schema.py"))

        groups = []
        by_perm = {}
        for role, perm, loc in pairs:
            if (role == "admin" and perm.name in IMPLICIT_ADMIN and perm.klass is None
                    and perm.properties is None and perm.check is None):
                continue
            if id(perm) not in by_perm:
                by_perm[id(perm)] = {"perm": perm, "roles": [], "locations": []}
                groups.append(by_perm[id(perm)])
            g = by_perm[id(perm)]
            g["roles"].append(self.role_names.get(role, role))
            g["locations"].append(loc)

        out = []
        for g in groups:
            grant = self.convert_grant(db, g["perm"], g["roles"], g["locations"][0])
            if grant is not None:
                out.append(grant)
        return out

    def convert_grant(self, db, perm, roles, loc):
        what = "permission %r%s for role%s %s" % (
            perm.name, " on class %r" % perm.klass if perm.klass else "",
            "s" if len(roles) > 1 else "", ", ".join(roles))
        if perm.klass is not None and perm.klass not in db.classes:
            self.problem(loc, "%s names unknown class %r; grant left out"
                         % (what, perm.klass))
            return None
        grant = {"roles": roles, "permission": perm.name, "class": perm.klass,
                 "location": loc}
        if perm.properties is not None and perm.klass is None:
            self.problem(loc, "%s is limited to properties %r but not to a class; "
                         "grant left out" % (what, list(perm.properties)))
            return None
        if perm.properties is not None:
            props = list(perm.properties)
            cl = db.classes[perm.klass] if perm.klass else None
            known = set(cl.getprops()) if cl is not None else None
            bad = [p for p in props if known is not None and p not in known]
            if bad:
                props = [p for p in props if p not in bad]
                if not props:
                    self.problem(loc, "%s: none of its properties %r exist; grant "
                                 "left out" % (what, list(perm.properties)))
                    return None
                self.note(loc, "%s: properties %r do not exist in class %r; "
                          "dropped from the list" % (what, bad, perm.klass))
            if not props:
                self.problem(loc, "%s has an empty property list; grant left out"
                             % what)
                return None
            grant["properties"] = props
            if perm.limit_perm_to_props_only:
                grant["props_only"] = True
        if perm.check is not None:
            expr = self.convert_check(perm, what, loc)
            if expr is None:
                return None
            grant["check"] = expr
        if perm.description != self.default_description(grant):
            grant["description"] = perm.description
        return grant

    @staticmethod
    def default_description(grant):
        """The description our loader gives a grant written without one."""
        if "properties" in grant or "check" in grant:
            return ""
        c = grant["class"]
        if c is None:
            return IMPLICIT_DESCRIPTIONS.get(grant["permission"], "")
        return {"Create": "User is allowed to create %s" % c,
                "Edit": "User is allowed to edit %s" % c,
                "View": "User is allowed to access %s" % c,
                "Retire": "User is allowed to retire %s" % c}.get(grant["permission"], "")

    def convert_check(self, perm, what, loc):
        fn = perm.check
        from roundup import security
        if getattr(fn, "__qualname__", "").startswith(
                security.Permission.check_factory.__qualname__):
            filt = perm.filter
            self.problem(self.function_location(filt),
                         "%s (assigned at %s) has the filter function %r and no "
                         "check function; filter functions are not supported, grant "
                         "left out" % (what, loc, getattr(filt, "__name__", filt)))
            return None
        name = getattr(fn, "__name__", repr(fn))
        fn_loc = self.function_location(fn)
        known = KNOWN_CHECKS.get(name)
        reason = None
        if known is None:
            reason = "unknown check function %r" % name
        elif not same_function(fn, known[0]):
            reason = ("check function %r differs from Roundup's template version"
                      % name)
        elif known[1] is not None and perm.klass != known[1]:
            reason = ("check function %r reads class %r, but the permission is on "
                      "class %r" % (name, known[1], perm.klass))
        elif perm.klass is None:
            reason = "check function %r on a permission for every class" % name
        if reason:
            self.problem(fn_loc, "%s (assigned at %s): %s; grant left out (write a "
                         "check expression by hand)" % (what, loc, reason))
            return None
        return known[2]

    # -- detectors ----------------------------------------------------------

    def read_detectors(self, db):
        """({[detectors] key: classes}, [Python detector files])."""
        by_file = {}
        for reg in self.registrations:
            by_file.setdefault(reg[0], []).append(reg)
        # Registrations that did not go through Class.audit / Class.react.
        seen = {(r[2], r[3], r[4], id(r[6])) for r in self.registrations}
        for cn, cl in db.classes.items():
            for kind, table in (("audit", cl.auditors), ("react", cl.reactors)):
                for event, plist in table.items():
                    for prio, name, fn in plist:
                        if (cn, kind, event, id(fn)) not in seen:
                            self.problem(self.function_location(fn), "%s %r on %s %s "
                                         "was registered in a way this script did "
                                         "not see; not converted"
                                         % ("auditor" if kind == "audit" else "reactor",
                                            name, cn, event))

        det_dir = os.path.join(self.home, "detectors")
        files = [self.rel(p) for p in sorted(glob.glob(os.path.join(det_dir, "*.py")))]
        builtins = {}       # key -> [classes]
        python = []
        for rel in files:
            regs = by_file.pop(rel, [])
            stock = stock_template_module(os.path.join(self.home, rel))
            if stock is None:
                python.append(rel)
                self.note("%s:1" % rel, "not one of Roundup's template detectors: "
                          "the daemon runs it as a Python detector (python = [...])")
                continue
            if not regs:
                self.note("%s:1" % rel, "Roundup's %s registers nothing here; not "
                          "needed" % stock)
                continue
            found, why = self.builtin_registrations(db, rel, regs)
            if found is not None:
                for key in found:
                    if set(found[key]) & set(builtins.get(key, [])):
                        why = ("%s registers %s on a class another file registers it "
                               "on too" % (rel, key))
                        found = None
                        break
            if found is None:
                python.append(rel)
                self.note("%s:1" % rel, "Roundup's %s, but %s: the daemon runs it as "
                          "a Python detector (python = [...])" % (stock, why))
                continue
            for key, classes in found.items():
                builtins.setdefault(key, []).extend(classes)
        # Registered from anywhere else (schema.py, an extension, lib/ ...).
        for where, regs in sorted(by_file.items()):
            for rel, loc, cn, kind, event, prio, fn in regs:
                self.problem(loc, "%s %r on %s %s is registered outside detectors/; "
                             "not converted" % ("auditor" if kind == "audit" else
                                                "reactor", fn.__name__, cn, event))

        detectors = {}
        for key in DETECTOR_ORDER:
            if key not in builtins:
                continue
            classes = builtins[key]
            value = {} if classes == BUILTIN_DEFAULT_CLASSES[key] else {"classes": classes}
            if key == "statusauditor":
                value["chatting_requires_two_users"] = chatting_requires_two_users(db)
                if "classes" not in value:
                    value = dict(enabled=True, **value)
            detectors[key] = value or True
        return detectors, python

    def builtin_registrations(self, db, rel, regs):
        """The built-ins a template detector file's registrations amount to, as
        ({key: [classes in registration order]}, None), or (None, why not)."""
        per = {}            # key -> {class: {(kind, event, function name)}}
        order = {}          # key -> [classes]
        for _rel, loc, cn, kind, event, prio, fn in regs:
            name = getattr(fn, "__name__", repr(fn))
            code = getattr(fn, "__code__", None)
            if code is None or os.path.realpath(code.co_filename) != os.path.join(
                    self.home, rel):
                return None, "it registers %r, which it does not define" % name
            if name not in BUILTIN_FUNCTIONS:
                return None, "it registers %r, which has no built-in" % name
            if prio != 100:
                return None, "it registers %r with priority %s" % (name, prio)
            key = BUILTIN_FUNCTIONS[name][0]
            regs_here = per.setdefault(key, {}).setdefault(cn, set())
            if (kind, event, name) in regs_here:
                return None, "it registers %r twice on %s %s" % (name, cn, event)
            regs_here.add((kind, event, name))
            if cn not in order.setdefault(key, []):
                order[key].append(cn)
        out = {}
        for key, by_class in per.items():
            want = {(k, e, n) for n, (kk, pairs) in BUILTIN_FUNCTIONS.items()
                    if kk == key for k, e in pairs}
            for cn in order[key]:
                if by_class[cn] != want:
                    return None, ("its registrations on %s differ from the built-in "
                                  "%s's (%s)" % (cn, key, ", ".join(
                                      "%s %s %s" % r for r in sorted(want))))
                unfit = builtin_unfit(db, key, cn)
                if unfit:
                    return None, "%s on %s: %s" % (key, cn, unfit)
            out[key] = order[key]
        return out, None

    # -- output -------------------------------------------------------------

    def toml(self):
        import roundup
        lines = [
            "# Tracker schema converted from the Roundup tracker %s" % self.home,
            "# by convert-schema.py (Roundup %s)." % roundup.__version__,
            "# Format reference: tracker-template/README.md.",
        ]
        if self.problems:
            lines.append("#")
            lines.append("# NOT CONVERTED (see the conversion report):")
            for loc, msg in self.problems:
                for i, part in enumerate(textwrap.wrap("%s: %s" % (loc, msg), 86)):
                    lines.append("#   " + ("" if i == 0 else "  ") + part)
        lines.append("")
        lines.append("# " + "-" * 64 + " classes")
        for c in self.classes:
            lines.append("")
            lines.append("# %s" % c["location"])
            lines.append("[class.%s]" % key(c["name"]))
            if c["kind"] != "Class":
                lines.append("kind = %s" % tstr(c["kind"]))
            for opt in ("key", "labelprop", "orderprop"):
                if c[opt]:
                    lines.append("%s = %s" % (opt, tstr(c[opt])))
            props = omit_implicit(c)
            if props:
                lines.append("[class.%s.properties]" % key(c["name"]))
                for pn, (ty, opts) in props:
                    lines.append("%s = %s" % (key(pn), prop_toml(ty, opts)))
        lines.append("")
        lines.append("# " + "-" * 64 + " roles")
        for name, desc in self.roles:
            lines.append("")
            lines.append("[[role]]")
            lines.append("name = %s" % tstr(name))
            lines.append("description = %s" % tstr(desc or ""))
        lines.append("")
        lines.append("# " + "-" * 64 + " permissions")
        lines.append("# Implicit (added by the loader): the Admin role has Create, "
                     "Edit, Restore,")
        lines.append("# Retire and View on every class, and Web Access, Rest Access, "
                     "Xmlrpc Access,")
        lines.append("# Web Roles and Email Access.")
        for g in self.grants:
            lines.append("")
            lines.append("# %s" % g["location"])
            lines.append("[[grant]]")
            lines.append("roles = [%s]" % ", ".join(tstr(r) for r in g["roles"]))
            lines.append("permission = %s" % tstr(g["permission"]))
            if g["class"] is not None:
                lines.append("class = %s" % tstr(g["class"]))
            if "properties" in g:
                lines.append("properties = [%s]" % ", ".join(tstr(p) for p in g["properties"]))
            if g.get("props_only"):
                lines.append("props_only = true")
            if "check" in g:
                lines.append("check = %s" % tstr(g["check"]))
            if "description" in g:
                lines.append("description = %s" % tstr(g["description"]))
        lines.append("")
        lines.append("# " + "-" * 64 + " detectors")
        lines.append("[detectors]")
        for name, value in self.detectors.items():
            if value is True:
                lines.append("%s = true" % name)
            else:
                lines.append("%s = { %s }" % (name, ", ".join(
                    "%s = %s" % (k, toml_value(v)) for k, v in value.items())))
        if self.python_detectors:
            lines.append("# The tracker's own detectors, run as they are (Python):")
            lines.append("python = %s" % toml_value(self.python_detectors))
        return "\n".join(lines) + "\n"

    def report(self):
        out = []
        for loc, msg in self.problems:
            out.append("%s: not converted: %s" % (loc, msg))
        for loc, msg in self.notes:
            out.append("%s: note: %s" % (loc, msg))
        det = ", ".join(
            "%s (%s)" % (k, ", ".join(v["classes"])) if isinstance(v, dict)
            and "classes" in v else k for k, v in self.detectors.items()) or "none"
        py = ", ".join(self.python_detectors) or "none"
        out.append("converted %d classes, %d roles, %d grants; detectors: %s; "
                   "Python detectors: %s; %d item(s) not converted"
                   % (len(self.classes), len(self.roles), len(self.grants), det, py,
                      len(self.problems)))
        return out


# -- helpers -------------------------------------------------------------------


def strip_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                             ast.Module)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised(source):
    return ast.dump(strip_docstrings(ast.parse(textwrap.dedent(source))),
                    include_attributes=False)


def same_function(fn, canonical):
    """True if fn's source is the canonical one (docstrings and layout aside)."""
    import inspect
    if getattr(fn, "__closure__", None) or getattr(fn, "__defaults__", None):
        return False
    try:
        src = inspect.getsource(fn)
        return normalised(src) == normalised(canonical)
    except (OSError, TypeError, SyntaxError):
        return False


def template_dirs():
    """The template directories of the installed Roundup (never the tracker)."""
    import roundup.admin
    dirs = []
    path = roundup.admin.__file__
    candidates = []
    for n in (2, 4, 5, 6):
        p = path
        for _ in range(n):
            p = os.path.dirname(p)
        candidates.append(os.path.join(p, "share", "roundup", "templates"))
    candidates.append(os.path.join(sys.prefix, "share", "roundup", "templates"))
    for c in candidates:
        if os.path.isdir(c):
            for t in sorted(os.listdir(c)):
                d = os.path.join(c, t)
                if os.path.isdir(os.path.join(d, "detectors")) and d not in dirs:
                    dirs.append(d)
    return dirs


def module_fingerprint(path):
    """The module's code without its init() and docstrings."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    tree.body = [n for n in tree.body
                 if not (isinstance(n, ast.FunctionDef) and n.name == "init")]
    return ast.dump(strip_docstrings(tree), include_attributes=False)


_STOCK = None


def stock_fingerprints():
    """module fingerprint -> 'template/detectors/name.py' for every detector of
    every template the installed Roundup ships."""
    global _STOCK
    if _STOCK is None:
        _STOCK = {}
        for d in template_dirs():
            for path in sorted(glob.glob(os.path.join(d, "detectors", "*.py"))):
                try:
                    fp = module_fingerprint(path)
                except (OSError, SyntaxError, UnicodeDecodeError):
                    continue
                _STOCK.setdefault(fp, "%s template's detectors/%s" % (
                    os.path.basename(d), os.path.basename(path)))
    return _STOCK


def stock_template_module(path):
    """Which template detector the file's code is (init() aside), or None."""
    try:
        return stock_fingerprints().get(module_fingerprint(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def builtin_unfit(db, key, cn):
    """Why the built-in `key` cannot run on class `cn` exactly as Roundup's code
    would (our loader's requirements, plus the classes Roundup's code hard-codes),
    or None."""
    from roundup import hyperdb, roundupdb

    def prop(cname, pn, types, target=None):
        cl = db.classes.get(cname)
        p = cl.getprops().get(pn) if cl is not None else None
        if p is None or not isinstance(p, types):
            return False
        return target is None or getattr(p, "classname", None) == target

    def keyed(cname):
        cl = db.classes.get(cname)
        return cl is not None and bool(cl.key)

    S, L, M = hyperdb.String, hyperdb.Link, hyperdb.Multilink
    checks = {
        "statusauditor": [(prop(cn, "status", L, "status"), "status is not a Link to status"),
                          (prop(cn, "messages", M), "no Multilink messages"),
                          (keyed("status"), "class status has no key")],
        "nosyreaction": [
            (isinstance(db.classes[cn], roundupdb.IssueClass), "not an IssueClass"),
            (prop(cn, "nosy", M, "user"), "nosy is not a Multilink to user"),
            (prop(cn, "messages", M, "msg"), "messages is not a Multilink to msg"),
            (prop(cn, "title", S), "no String title"),
            ("assignedto" not in db.classes[cn].getprops()
             or prop(cn, "assignedto", (L, M), "user"), "assignedto is not to user"),
            (prop("msg", "author", L, "user"), "msg.author is not a Link to user"),
            (prop("msg", "recipients", M, "user"), "msg.recipients is not a Multilink to user"),
            (prop("msg", "content", S), "msg has no content")],
        "messagesummary": [(prop(cn, "summary", S), "no String summary"),
                           (prop(cn, "content", S), "no content")],
        "userauditor": [(all(pn not in db.classes[c].getprops() or prop(c, pn, S)
                             for c in (cn, "user") if c in db.classes
                             for pn in ("username", "address", "alternate_addresses",
                                        "roles", "timezone")),
                         "a user property is not a String")],
        "no_texthtml": [(prop(cn, "type", S), "no String type")],
        "preset_new": [(prop(cn, "status", L, "status"), "status is not a Link to status"),
                       (keyed("status"), "class status has no key")],
        "init_severity": [(prop(cn, "severity", L, "severity"),
                           "severity is not a Link to severity"),
                          (keyed("severity"), "class severity has no key")],
        "patches_text_plain": [(prop(cn, "name", S), "no String name"),
                               (prop(cn, "type", S), "no String type")],
        "patches_keyword": [(cn == "bug", "Roundup's code reads class bug, not %s" % cn),
                            (prop(cn, "files", M, "file"), "files is not a Multilink to file"),
                            (prop(cn, "keywords", M, "keyword"),
                             "keywords is not a Multilink to keyword"),
                            (prop("file", "name", S), "file has no String name"),
                            (keyed("keyword"), "class keyword has no key")],
    }
    for ok, why in checks[key]:
        if not ok:
            return why
    return None


def chatting_requires_two_users(db):
    """statusauditor's option, read exactly as the detector reads it."""
    from roundup.configuration import BooleanOption, InvalidOptionError
    try:
        return bool(BooleanOption(None, "detector::Statusauditor",
                                  "CHATTING_REQUIRES_TWO_USERS").str2value(
            db.config.detectors["STATUSAUDITOR_CHATTING_REQUIRES_TWO_USERS"]))
    except (InvalidOptionError, KeyError):
        return False


IMPLICIT_PROPS = {
    "FileClass": [("content", ("String", {"indexme": True})), ("type", ("String", {}))],
    "IssueClass": [("title", ("String", {"indexme": True})),
                   ("messages", ("Multilink", {"to": "msg"})),
                   ("files", ("Multilink", {"to": "file"})),
                   ("nosy", ("Multilink", {"to": "user", "do_journal": False})),
                   ("superseder", ("Multilink", {"to": None}))],
}


def omit_implicit(c):
    """The properties to write: those the class kind adds are left out when they
    are the defaults and the loader would put them in the same place."""
    implicit = [(n, (ty, dict(o, to=c["name"]) if o.get("to", 1) is None else o))
                for n, (ty, o) in IMPLICIT_PROPS.get(c["kind"], [])]
    defaults = dict(implicit)
    props = c["properties"]
    kept = [(n, s) for n, s in props if defaults.get(n) != s]
    names = [n for n, _ in kept]
    order = names + [n for n, _ in implicit if n not in names]
    if order == [n for n, _ in props] and all(
            n in names or n in dict(props) for n, _ in implicit):
        return kept
    return props


def tstr(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return tstr(v)
    return "[%s]" % ", ".join(toml_value(x) for x in v)


def key(s):
    if s and all(c.isascii() and (c.isalnum() or c in "_-") for c in s):
        return s
    return tstr(s)


def prop_toml(ty, opts):
    if not opts:
        return tstr(ty)
    parts = ["type = %s" % tstr(ty)]
    for k in ("to", "do_journal", "indexme", "quiet", "required"):
        if k in opts:
            v = opts[k]
            parts.append("%s = %s" % (k, tstr(v) if isinstance(v, str)
                                      else "true" if v else "false"))
    return "{ %s }" % ", ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a Roundup tracker's schema to schema.toml.")
    parser.add_argument("tracker", metavar="TRACKER_DIR")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write schema.toml here (default: standard output)")
    parser.add_argument("--allow-unconverted", action="store_true",
                        help="write the schema even if some items could not be "
                             "converted (they are still reported and left out)")
    args = parser.parse_args(argv)

    if not os.path.isfile(os.path.join(args.tracker, "schema.py")):
        print("convert-schema: %s: not a Roundup tracker (no schema.py)"
              % args.tracker, file=sys.stderr)
        return 2
    try:
        import roundup.instance  # noqa: F401
    except ImportError as e:
        print("convert-schema: Roundup is not importable (%s); install it with "
              "pip install roundup" % e, file=sys.stderr)
        return 2
    conv = Converter(args.tracker)
    try:
        conv.load()
    except Exception as e:  # the tracker's own code may raise anything
        print("convert-schema: %s: cannot load the tracker: %s: %s"
              % (args.tracker, type(e).__name__, e), file=sys.stderr)
        return 2
    for line in conv.report():
        print(line, file=sys.stderr)
    if conv.problems and not args.allow_unconverted:
        print("convert-schema: %d item(s) could not be converted; nothing written "
              "(use --allow-unconverted to write the schema without them)"
              % len(conv.problems), file=sys.stderr)
        return 1
    text = conv.toml()
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            print("convert-schema: cannot write %s: %s" % (args.output, e),
                  file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
