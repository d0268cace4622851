"""roundup-xmlrpc-server's Python detector worker.

The daemon starts one worker per tracker that has Python detectors
(schema.toml `[detectors] python = [...]`) and talks to it over the worker's
standard input and output with length-prefixed frames: a 4-byte big-endian
length, then a UTF-8 JSON array. The worker loads the tracker's detector files
unmodified, the way Roundup's `instance.Tracker.open` does, against a `db`
facade built from the schema the daemon sends. It never opens the database:
every read and write a detector makes is a call back into the daemon, which
runs it on the API call's own transaction (so a rollback is total), firing
nested detectors (built-in or Python) as Roundup would.

Frames (daemon -> worker):
  ["hello", {schema, roles, files}]   -> ["ok", {registrations, roundup, python}]
                                       | ["fail", message]
  ["fire", handles, event, class, nodeid, values, session]
                                       -> ["ok", newvalues|null] | ["err", {...}]
  ["r", value] / ["e", error]          replies to the worker's calls
Frames (worker -> daemon), only while a fire runs (they nest):
  ["call", method, args...]            -> ["r", ...] | ["e", ...] | a nested "fire"

Values: JSON, with tags for Roundup's types: {"$d": "YYYYmmddHHMMSS.fff"}
(roundup.date.Date, as Roundup stores it), {"$i": text} (Interval),
{"$p": "{SCHEME}..."} (Password), {"$b": base64} (bytes). Dicts whose order
matters (newvalues, nodes) travel as lists of [key, value] pairs.

Usage: python3 -c <this file> TRACKER_HOME. The protocol file descriptors are
moved aside at start; fd 0 becomes /dev/null and fd 1 a copy of stderr, so a
detector's print() goes to the daemon's log and cannot corrupt the protocol.
"""

import base64
import json
import logging
import os
import struct
import sys
import traceback

# ------------------------------------------------------------------ transport
_PIN = os.dup(0)            # os.dup's copies are not inherited by subprocesses
_POUT = os.dup(1)
_devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(_devnull, 0)
os.close(_devnull)
os.dup2(2, 1)
sys.stdout = sys.stderr
_rin = os.fdopen(_PIN, "rb", buffering=1 << 16)
_wout = os.fdopen(_POUT, "wb", buffering=0)
# `python -c` puts the current directory first on sys.path: not wanted.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                    format="%(levelname)s %(name)s: %(message)s")


class ProtocolError(Exception):
    """The daemon sent something this worker does not understand."""


def _recv():
    head = _rin.read(4)
    if len(head) < 4:
        os._exit(0)             # the daemon closed the pipe: shut down quietly
    (n,) = struct.unpack(">I", head)
    data = _rin.read(n)
    if len(data) < n:
        os._exit(0)
    return json.loads(data.decode("utf-8"), object_hook=_decode_tag)


def _send(msg):
    """Sends one frame. Encoding failures (a value that is not JSON, a lone
    surrogate in a string) raise before anything is written."""
    data = json.dumps(msg, default=_encode_obj, ensure_ascii=False,
                      allow_nan=False, separators=(",", ":")).encode("utf-8")
    _wout.write(struct.pack(">I", len(data)) + data)


# Roundup is imported after the hello frame, so that a missing or broken
# installation is reported to the daemon instead of killing the worker.
date = hyperdb = password = roundupdb = rexc = configuration = None
mailer = cgiexc = None


def _import_roundup():
    global date, hyperdb, password, roundupdb, rexc, configuration
    global mailer, cgiexc
    from roundup import date, hyperdb, password, roundupdb   # noqa: F811
    from roundup import exceptions as rexc                   # noqa: F811
    from roundup import configuration, mailer                # noqa: F811
    from roundup.cgi import exceptions as cgiexc             # noqa: F811


def _decode_tag(d):
    if len(d) == 1:
        k, v = next(iter(d.items()))
        if k == "$d":
            return date.Date(v)
        if k == "$i":
            return date.Interval(v)
        if k == "$p":
            return password.Password(encrypted=v)
        if k == "$b":
            return base64.b64decode(v)
    return d


def _encode_obj(o):
    if isinstance(o, date.Date):
        return {"$d": o.serialise()}
    if isinstance(o, date.Interval):
        return {"$i": str(o)}
    if isinstance(o, password.Password):
        return {"$p": str(o)}
    if isinstance(o, (bytes, bytearray)):
        return {"$b": base64.b64encode(bytes(o)).decode("ascii")}
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError("a %s cannot be passed to the database" % type(o).__name__)


def _pairs(d):
    return [[k, v] for k, v in d.items()]


# -------------------------------------------------------------- error tables
# Exceptions a detector raised that travel through the daemon (a nested write
# failing in a nested detector) come back as the same object.
_pending = {}
_next_token = [0]


def _exception_for(err):
    """The Python exception for an error reply of the daemon."""
    tok = err.get("pytoken")
    if tok is not None and tok in _pending:
        return _pending.pop(tok)
    cls = {
        "KeyError": KeyError, "IndexError": IndexError,
        "ValueError": ValueError, "TypeError": TypeError,
        "AttributeError": AttributeError, "OverflowError": OverflowError,
        "Exception": Exception,
        "roundup.exceptions.Reject": rexc.Reject,
        "roundup.exceptions.UsageError": rexc.UsageError,
        "roundup.exceptions.Unauthorised": rexc.Unauthorised,
        "roundup.hyperdb.DesignatorError": hyperdb.DesignatorError,
    }.get(err.get("class"), RuntimeError)
    e = cls(err.get("msg", ""))
    e._rxs_rust = err.get("token")
    return e


def _error_frame(e, tb):
    """["err", {...}] for an exception a detector raised."""
    e = _wrap(e, tb)
    tok = _next_token[0]
    _next_token[0] += 1
    _pending[tok] = e
    try:
        msg = getattr(e, "_rxs_subject", None) or str(e)
    except Exception:       # a broken __str__ must not break the protocol
        msg = "<unprintable %s>" % type(e).__name__
    return ["err", {
        "type": str(type(e)),
        "msg": msg,
        "usage": isinstance(e, (TypeError, IndexError, ValueError)),
        "pytoken": tok,
        "token": getattr(e, "_rxs_rust", None),
        "tb": tb,
    }]


def _wrap(e, tb):
    """hyperdb.Class.fireAuditors/fireReactors: an EnvironmentError or
    ArithmeticError becomes roundup.cgi.exceptions.DetectorError."""
    if isinstance(e, (EnvironmentError, ArithmeticError)) and not isinstance(
            e, cgiexc.DetectorError):
        html = "<h1>Traceback</h1>" + tb.replace("\n", "<br>").replace(
            " ", "&nbsp;")
        txt = "Caught exception %s: %s\n%s" % (str(type(e)), e, tb)
        w = cgiexc.DetectorError("Error: %s" % e, html, txt)
        # The fault shows the subject only; the traceback goes to the log.
        w._rxs_subject = "Error: %s" % e
        return w
    return e


# -------------------------------------------------------------------- calls
class Session:
    """State of the API call being served: its id, and a node cache that
    lives until the next write or the next fire frame."""
    sid = None
    cache = {}


_READY = [False]


def call(method, *args):
    """Asks the daemon; serves nested fires while waiting."""
    if not _READY[0]:
        raise RuntimeError(
            "the database cannot be used while init(db) runs in detectors run by "
            "roundup-xmlrpc-server (db.%s)" % method)
    _send(["call", method] + list(args))
    while True:
        msg = _recv()
        kind = msg[0]
        if kind == "r":
            return msg[1]
        if kind == "e":
            raise _exception_for(msg[1])
        if kind == "fire":
            _send(fire(*msg[1:]))
            continue
        raise ProtocolError("unexpected frame %r" % (kind,))


def write_call(method, *args):
    """A call that may change anything (nested detectors run): the node
    cache is dropped before and after it."""
    Session.cache = {}
    try:
        return call(method, *args)
    finally:
        Session.cache = {}


def _pairs_to_dict(pairs):
    return dict((k, v) for k, v in pairs)


# ------------------------------------------------------------------ the facade
_marker = []
_AUTOMATIC = ("creation", "activity", "creator", "actor")


def make_prop(spec):
    t = spec["type"]
    kw = {"required": bool(spec.get("required")),
          "quiet": bool(spec.get("quiet"))}
    if t == "Link":
        return hyperdb.Link(spec["to"], do_journal="yes" if spec.get(
            "do_journal", True) else "no", **kw)
    if t == "Multilink":
        return hyperdb.Multilink(spec["to"], do_journal="yes" if spec.get(
            "do_journal", True) else "no", **kw)
    if t == "String":
        return hyperdb.String(indexme="yes" if spec.get("indexme") else "no",
                              **kw)
    return {"Password": hyperdb.Password, "Date": hyperdb.Date,
            "Interval": hyperdb.Interval, "Boolean": hyperdb.Boolean,
            "Number": hyperdb.Number, "Integer": hyperdb.Integer}[t](**kw)


def _sorted_ids(ids):
    return sorted(set(ids), key=lambda i: (len(i), i))


class FacadeClass:
    """The storage methods of a hyperdb class, answered by the daemon. Mixed
    in before Roundup's hyperdb.Class, whose generic methods (getnode, Node,
    labelprop, orderprop, history, get_roles, has_role, ...) are used as
    they are."""

    # -- registration: recorded; the daemon fires them in Roundup's order
    def audit(self, event, detector, priority=100):
        self.db._register(self, "audit", event, detector, priority)

    def react(self, event, detector, priority=100):
        self.db._register(self, "react", event, detector, priority)

    def fireAuditors(self, event, nodeid, newvalues):
        raise NotImplementedError(
            "fireAuditors: detectors are fired by roundup-xmlrpc-server")

    fireReactors = fireAuditors

    # -- reads
    def _node(self, nodeid):
        key = (self.classname, nodeid)
        node = Session.cache.get(key)
        if node is None:
            pairs, retired = call("node", self.classname, str(nodeid))
            node = _pairs_to_dict(pairs)
            node["__retired__"] = retired
            Session.cache[key] = node
        return node

    def get(self, nodeid, propname, default=_marker, cache=1,
            allow_abort=True):
        if propname == "id":
            return nodeid
        d = self._node(nodeid)
        if propname in d and propname != "__retired__":
            r = d[propname]
            if isinstance(r, list):
                return r[:]
            if r is not None:
                return r
            if propname in _AUTOMATIC:
                return r
        if propname == "creation" or propname == "activity":
            return date.Date()
        if propname == "creator" or propname == "actor":
            return self.db.getuid()
        prop = self.properties[propname]        # KeyError, as Roundup
        if default is _marker:
            return [] if isinstance(prop, hyperdb.Multilink) else None
        return default

    def getnodeids(self, retired=None):
        return call("ids", self.classname, retired)

    def list(self):
        return call("ids", self.classname, False)

    def count(self):
        return len(call("ids", self.classname, None))

    def is_retired(self, nodeid, allow_abort=True):
        try:
            int(nodeid)
        except ValueError:
            raise hyperdb.HyperdbValueError(
                "class %s: %r is not an id" % (self.classname, nodeid))
        return bool(self._node(nodeid)["__retired__"])

    def hasnode(self, nodeid):
        """rdbms_common.Database.hasnode: 1 or 0 (the type of its SQL count),
        0 past SQL's INTEGER range, ValueError for a non-numeric id."""
        if int(nodeid) >= 2**31:
            return 0
        return 1 if call("exists", self.classname, str(nodeid)) else 0

    def setkey(self, propname):
        prop = self.getprops()[propname]
        if not isinstance(prop, hyperdb.String):
            raise TypeError("key properties must be String")
        self.key = propname

    def getkey(self):
        return self.key

    def lookup(self, keyvalue):
        if not self.key:
            raise TypeError("No key property set for class %s" %
                            self.classname)
        if keyvalue == "@current_user" and self.classname == "user":
            keyvalue = self.db.user.get(self.db.getuid(), self.key)
        found = call("lookup", self.classname, str(keyvalue))
        if found is None:
            raise KeyError('No key (%s) value "%s" for "%s"' % (
                self.key, keyvalue, self.classname))
        return found

    def find(self, **propspec):
        if not propspec:
            return []
        props = self.getprops()
        spec = []
        for propname, values in propspec.items():
            prop = props[propname]
            if not isinstance(prop, (hyperdb.Link, hyperdb.Multilink)):
                raise TypeError("'%s' not a Link/Multilink property" %
                                propname)
            if isinstance(values, str) or values is None:
                values = [values]
            elif isinstance(values, dict):
                values = list(values)
            else:
                values = list(values)
            if isinstance(prop, hyperdb.Multilink):
                values = [v for v in values if v is not None]
            spec.append([propname, [None if v is None else str(v)
                                    for v in values]])
        return call("find", self.classname, spec)

    def stringFind(self, **requirements):
        spec = []
        for propname, value in requirements.items():
            prop = self.properties[propname]
            if not isinstance(prop, hyperdb.String):
                raise TypeError("'%s' not a String property" % propname)
            spec.append([propname, value.lower()])
        return call("stringFind", self.classname, spec)

    def filter(self, search_matches, filterspec, sort=[], group=[],
               retired=False, exact_match_spec={}, limit=None, offset=None):
        if retired is not False and retired != 0:
            raise NotImplementedError(
                "filter(retired=%r): only live items can be filtered in "
                "detectors run by roundup-xmlrpc-server" % (retired,))
        if search_matches is not None:
            search_matches = [str(i) for i in search_matches]
        return call("filter", self.classname, search_matches,
                    _filter_pairs(filterspec), _sort_pairs(sort),
                    _sort_pairs(group), _filter_pairs(exact_match_spec),
                    limit, offset)

    def filter_iter(self, *args, **kw):
        return iter(self.filter(*args, **kw))

    def getprops(self, protected=1):
        d = self.properties.copy()
        if protected:
            d["id"] = hyperdb.String()
            d["creation"] = hyperdb.Date()
            d["activity"] = hyperdb.Date()
            d["creator"] = hyperdb.Link("user")
            d["actor"] = hyperdb.Link("user")
        return d

    def addprop(self, **properties):
        raise NotImplementedError(
            "addprop: the schema is schema.toml's (roundup-xmlrpc-server)")

    def index(self, nodeid):
        pass                    # the daemon indexes what it writes

    # -- writes: the daemon runs them (checks, journal, nested detectors)
    def create(self, **propvalues):
        values = _normalise(self, propvalues, True)
        return write_call("create", self.classname, values)

    def set(self, nodeid, **propvalues):
        values = _normalise(self, propvalues, False)
        changed = write_call("set", self.classname, str(nodeid), values)
        return _pairs_to_dict(changed)

    def retire(self, nodeid):
        write_call("retire", self.classname, str(nodeid))

    def restore(self, nodeid):
        write_call("restore", self.classname, str(nodeid))

    def destroy(self, nodeid):
        raise NotImplementedError(
            "destroy: not supported by roundup-xmlrpc-server")


def _filter_value(v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_filter_value(x) for x in v]
    if isinstance(v, dict):
        return [_filter_value(x) for x in v]
    return str(v)


def _filter_pairs(spec):
    if not spec:
        return []
    return [[str(k), _filter_value(v)] for k, v in spec.items()]


def _sort_pairs(sort):
    if not sort:
        return []
    if isinstance(sort, tuple) and len(sort) == 2 and not isinstance(
            sort[0], (tuple, list)):
        sort = [sort]
    out = []
    for d, p in sort:
        if p is None:
            continue
        out.append([d or "+", str(p)])
    return out


def _normalise(cl, values, create):
    """Checks and converts newvalues as Roundup's create_inner/set_inner do
    (same exception classes and messages), resolving key names of Links to
    ids; returns [key, value] pairs for the daemon."""
    props = cl.properties
    if create:
        if "id" in values:
            raise KeyError('"id" is reserved')
    if any(k in values for k in _AUTOMATIC):
        raise KeyError('"creator", "actor", "creation" and "activity" are '
                       'reserved')
    if not create and "id" in values:
        raise KeyError('"id" is reserved')
    is_file = isinstance(cl, hyperdb.FileClass)
    for p in values:
        if p == "content" and is_file:
            continue
        props[p]                # KeyError(p), as Roundup
    out = []
    for key, value in values.items():
        prop = props[key]
        if key == "content" and is_file:
            if value is not None and not isinstance(value, (str, bytes)):
                raise TypeError('new property "content" not a string')
        elif isinstance(prop, hyperdb.Link):
            if value is not None:
                if not isinstance(value, str):
                    if create:
                        raise ValueError("link value must be String")
                    raise ValueError('property "%s" link value be a string'
                                     % key)
                value = _link_id(prop, key, value)
        elif isinstance(prop, hyperdb.Multilink):
            if value is None:
                value = []
            if not hasattr(value, "__iter__") or isinstance(value, str):
                raise TypeError('new property "%s" not an iterable of ids'
                                % key)
            ids = []
            for entry in value:
                if not isinstance(entry, str):
                    if create:
                        raise ValueError('"%s" multilink value (%r) must '
                                         'contain Strings' % (key, value))
                    raise ValueError('new property "%s" link value must be '
                                     'a string' % key)
                ids.append(_link_id(prop, key, entry))
            value = _sorted_ids(ids)
        elif isinstance(prop, hyperdb.String):
            if (create or value is not None) and not isinstance(value, str):
                raise TypeError('new property "%s" not a string' % key)
        elif isinstance(prop, hyperdb.Password):
            if value is not None and not isinstance(value,
                                                    password.Password):
                raise TypeError('new property "%s" not a Password' % key)
        elif isinstance(prop, hyperdb.Date):
            if value is not None and not isinstance(value, date.Date):
                raise TypeError('new property "%s" not a Date' % key)
        elif isinstance(prop, hyperdb.Interval):
            if value is not None and not isinstance(value, date.Interval):
                raise TypeError('new property "%s" not an Interval' % key)
        elif value is not None and isinstance(prop, hyperdb.Number):
            try:
                value = float(value)
            except ValueError:
                raise TypeError('new property "%s" not numeric' % key)
        elif value is not None and isinstance(prop, hyperdb.Integer):
            try:
                value = int(value)
            except ValueError:
                raise TypeError('new property "%s" not integer' % key)
        elif value is not None and isinstance(prop, hyperdb.Boolean):
            try:
                value = bool(int(value))
            except ValueError:
                raise TypeError('new property "%s" not boolean' % key)
        out.append([key, value])
    return out


def _link_id(prop, key, value):
    """An id string, or a key value of the target class looked up."""
    if value.isdigit() and value.isascii():
        return value
    try:
        return DB.classes[prop.classname].lookup(value)
    except (TypeError, KeyError):
        raise IndexError('new property "%s": %s not a %s' % (
            key, value, prop.classname))


class FacadeFileClass(FacadeClass):
    def get(self, nodeid, propname, default=_marker, cache=1,
            allow_abort=True):
        if propname == "content":
            data = call("content", self.classname, str(nodeid))
            if data is None:
                return ("ERROR reading file: %s%s\nPossibly an access right "
                        "configuration problem.\n[Errno 2] No such file or "
                        "directory" % (self.classname, nodeid))
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                import hashlib
                return ("%s%s is not text, retrieve using binary_content "
                        "property. mdsum: %s") % (
                            self.classname, nodeid,
                            hashlib.md5(data).hexdigest())  # noqa: S324
        if propname == "binary_content":
            data = call("content", self.classname, str(nodeid))
            return b"" if data is None else data
        return FacadeClass.get(self, nodeid, propname, default)


class FacadeRole:
    def __init__(self, name, description):
        self.name = name
        self.description = description

    def __repr__(self):
        return "<Role %s>" % self.name


class FacadeSecurity:
    """db.security: hasPermission is answered by the daemon from
    schema.toml's roles and grants; role maps lower-cased names to roles."""

    def __init__(self, roles):
        self.role = dict((r["name"].lower(), FacadeRole(r["name"],
                                                        r["description"]))
                         for r in roles)

    def hasPermission(self, permission, userid, classname=None,
                      property=None, itemid=None,
                      skip_permissions_with_check=False):
        return call("perm", permission, str(userid) if userid is not None
                    else None, classname, property,
                    None if itemid is None else str(itemid))


class Database:
    """The `db` detectors see (mixed in before roundupdb.Database, whose
    getuid, getUserTimezone, registerClearCacheCallback, log_* are Roundup's)."""

    def __init__(self, home, hello):
        roundupdb.Database.__init__(self)
        self.config = configuration.CoreConfig(home)
        self.security = FacadeSecurity(hello["roles"])
        self.classes = {}
        self.journaltag = None
        self.tx_Source = "xmlrpc"
        self.arg = "?"
        self.handlers = []
        self.registrations = []
        try:
            from roundup import i18n
            self.i18n = i18n.get_translation(self.config.TRACKER_LANGUAGE,
                                             tracker_home=home)
        except Exception:       # as Roundup: translations are optional
            pass
        # the class objects: Roundup's own hyperdb code over the facade
        kinds = {"Class": ClassC, "FileClass": FileClassC,
                 "IssueClass": IssueClassC}
        for spec in hello["schema"]:
            props = dict((name, make_prop(p)) for name, p in spec["props"])
            cl = kinds[spec["kind"]](self, spec["name"], **props)
            cl.key = spec.get("key") or ""
            if spec.get("labelprop"):
                cl._labelprop = spec["labelprop"]
            if spec.get("orderprop"):
                cl._orderprop = spec["orderprop"]

    def __getattr__(self, name):
        classes = self.__dict__.get("classes", {})
        if name in classes:
            return classes[name]
        raise AttributeError(name)

    def addclass(self, cl):
        cn = cl.classname
        if cn in self.classes:
            raise ValueError(cn)
        self.classes[cn] = cl

    def getclass(self, classname):
        try:
            return self.classes[classname]
        except KeyError:
            raise KeyError('There is no class called "%s"' % classname)

    def getclasses(self):
        return sorted(self.classes)

    def hasnode(self, classname, nodeid):
        return self.getclass(classname).hasnode(nodeid)

    def getnode(self, classname, nodeid, fetch_multilinks=True,
                allow_abort=True):
        node = dict(self.getclass(classname)._node(nodeid))
        del node["__retired__"]
        return node

    def countnodes(self, classname):
        return self.getclass(classname).count()

    def getjournal(self, classname, nodeid):
        """Roundup's rdbms getjournal: rows as stored, params unmarshalled."""
        from roundup.anypy.strings import eval_import
        cl = self.getclass(classname)
        rows = call("journal", classname, str(nodeid))
        properties = cl.getprops()
        res = []
        for nid, stamp, user, action, params in rows:
            params = eval_import(params)
            if isinstance(params, dict):
                for param, value in params.items():
                    if not value:
                        continue
                    prop = properties.get(param)
                    if prop is None:
                        continue
                    if isinstance(prop, hyperdb.Password):
                        params[param] = password.JournalPassword(value)
                    elif isinstance(prop, hyperdb.Date):
                        # PostgreSQL's journal writes '2024-01-02 03:04:05.000'.
                        params[param] = date.Date(str(value).replace(' ', '.'))
                    elif isinstance(prop, hyperdb.Interval):
                        params[param] = date.Interval(value)
                    elif isinstance(prop, hyperdb.Boolean):
                        # PostgreSQL's journal writes a true Boolean as 'TRUE'.
                        params[param] = {'TRUE': 1, 'FALSE': 0}.get(value) \
                            if value in ('TRUE', 'FALSE') else int(value)
            res.append((nid, stamp, user, action, params))
        return res

    def getfile(self, classname, nodeid, property):
        data = call("content", classname, str(nodeid))
        if data is None:
            raise IOError("no content for %s%s" % (classname, nodeid))
        return data

    def filesize(self, classname, nodeid, property=None, create=0):
        return len(self.getfile(classname, nodeid, property))

    def storefile(self, classname, nodeid, property, content):
        raise NotImplementedError("storefile: use cl.set(id, content=...)")

    def addjournal(self, *args, **kw):
        raise NotImplementedError(
            "addjournal: journal entries are written by the daemon")

    def sql(self, *args, **kw):
        raise NotImplementedError(
            "db.sql: SQL is not available to detectors run by "
            "roundup-xmlrpc-server")

    def commit(self, *args, **kw):
        pass        # the daemon commits once the API call succeeded

    def rollback(self):
        raise roundupdb.DetectorError(
            "db.rollback() is not supported in detectors run by "
            "roundup-xmlrpc-server; raise an exception to fail the call")

    def close(self):
        pass

    def post_init(self):
        pass

    def clearCache(self):
        Session.cache = {}
        roundupdb.Database.clearCache(self)

    def _register(self, cl, kind, event, fn, priority):
        if event not in ("create", "set", "retire", "restore"):
            raise KeyError(event)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError("detector priority must be an int, not %r" %
                            (priority,))
        handle = len(self.handlers)
        self.handlers.append(fn)
        code = getattr(fn, "__code__", None)
        self.registrations.append(
            [handle, cl.classname, kind, event, priority,
             getattr(fn, "__name__", repr(fn)),
             _CURRENT_FILE[0] or (code.co_filename if code else "?"),
             code.co_firstlineno if code else 0])


# -------------------------------------------------------------- mail hook
def _queue_mail(self, to, message, sender=None):
    """Mailer.smtp_send: the mail is queued with the call's transaction and
    sent by the daemon after the commit (nothing is sent if it rolls back)."""
    if not sender:
        sender = self.config.ADMIN_EMAIL
    if isinstance(to, str):
        to = [to]
    call("mail", sender, [str(t) for t in to], message)


# ------------------------------------------------------------- load and fire
DB = None
_CURRENT_FILE = [None]
ClassC = FileClassC = IssueClassC = None


def load(home, hello):
    """Roundup's instance.Tracker.open for the detector files named in the
    hello: each file is executed in a fresh namespace with the detectors
    directory (and lib/, while executing) on sys.path, then each file's
    init(db) runs, in the same order."""
    global DB, ClassC, FileClassC, IssueClassC
    _import_roundup()
    mailer.Mailer.smtp_send = _queue_mail

    class ClassC(FacadeClass, hyperdb.Class):
        pass

    class FileClassC(FacadeFileClass, hyperdb.FileClass, hyperdb.Class):
        pass

    class IssueClassC(FacadeClass, hyperdb.Class, roundupdb.IssueClass):
        pass

    class FacadeDb(Database, roundupdb.Database):
        pass

    DB = FacadeDb(home, hello)
    dirpath = os.path.join(home, "detectors")
    libdir = os.path.join(home, "lib")
    inits = []
    sys.path.insert(1, dirpath)
    for rel in hello["files"]:
        path = os.path.join(home, rel)
        env = {}
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        if os.path.isdir(libdir):
            sys.path.insert(1, libdir)
        try:
            exec(code, env)
        except ImportError as e:
            raise ImportError("%s found when loading tracker extension: %s"
                              % (e, rel))
        finally:
            if os.path.isdir(libdir):
                sys.path.remove(libdir)
        if "init" not in env:
            raise KeyError("%s defines no init(db)" % rel)
        inits.append((rel, env["init"]))
    sys.path.remove(dirpath)
    DB.tx_Source = "xmlrpc"
    for rel, init in inits:
        _CURRENT_FILE[0] = rel
        try:
            init(DB)
        finally:
            _CURRENT_FILE[0] = None
    import roundup
    return {"registrations": DB.registrations,
            "roundup": getattr(roundup, "__version__", "?"),
            "python": sys.version.split()[0]}


def _begin(session):
    """Starts serving `session` = [id, uid, username]; a new id is a new API
    call: Roundup clears its caches at each commit/rollback."""
    sid, uid, user = session
    if sid != Session.sid:
        if Session.sid is not None:
            DB.clearCache()
        Session.sid = sid
        _pending.clear()
    DB.journaltag = user
    DB.journal_uid = (user, uid)


def fire(handles, event, classname, nodeid, values, session):
    """Runs a run of consecutive detectors on one dict, as Roundup passes one
    newvalues dict from auditor to auditor."""
    try:
        _begin(session)     # runs registerClearCacheCallback callbacks
    except BaseException as e:
        return _error_frame(e, traceback.format_exc())
    Session.cache = {}
    cl = DB.classes[classname]
    if values is not None:
        values = _pairs_to_dict(values)
    for h in handles:
        try:
            DB.handlers[h](DB, cl, nodeid, values)
        except BaseException as e:      # SystemExit too: it fails the call
            return _error_frame(e, traceback.format_exc())
    if values is None or handles and DB.registrations[handles[0]][2] == "react":
        return ["ok", None]
    try:
        out = _normalise(cl, values, event == "create")
        # fail here rather than in _send, where it would break the frame
        json.dumps(out, default=_encode_obj, allow_nan=False)
    except BaseException as e:
        return _error_frame(e, traceback.format_exc())
    return ["ok", out]


def main():
    home = sys.argv[1]
    msg = _recv()
    if msg[0] != "hello":
        _send(["fail", "expected hello, got %r" % (msg[0],)])
        return
    try:
        _send(["ok", load(home, msg[1])])
    except BaseException:
        _send(["fail", traceback.format_exc()])
        return
    _READY[0] = True
    while True:
        msg = _recv()
        if msg[0] == "fire":
            _send(fire(*msg[1:]))
        else:
            raise ProtocolError("unexpected frame %r" % (msg[0],))


if __name__ == "__main__":
    main()
