"""What an operator meets around the server: `init` without the password on the
command line, error messages that say what to do, schema migrations in the log,
and the shell completion scripts (run in real bash, zsh and fish).

These tests drive our binary only (``ours_only``).
"""

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
import xmlrpc.client

import pytest

from harness import Server, Tracker, copy_tracker

pytestmark = pytest.mark.ours_only

RUN_TIMEOUT = 60
BIN_NAME = "roundup-xmlrpc-server"


def run(ours_target, *args, env=None, stdin=None, cwd=None):
    """Run the binary to completion; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("ROUNDUP_ADMIN_PASSWORD", None)
    full_env.update(env or {})
    return subprocess.run([str(ours_target.binary), *map(str, args)],
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, env=full_env,
                          cwd=cwd)


def assert_exit(proc, code, pattern):
    assert proc.returncode == code, (
        "expected exit %d, got %d\nstdout:\n%s\nstderr:\n%s"
        % (code, proc.returncode, proc.stdout, proc.stderr))
    assert re.search(pattern, proc.stderr), (
        "stderr does not match %r:\n%s" % (pattern, proc.stderr))


def can_log_in(ours_target, home, password):
    with Server(ours_target, Tracker(home)) as srv:
        try:
            return srv.proxy("admin", password).lookup("user", "admin") == "1"
        except xmlrpc.client.ProtocolError as e:
            assert e.errcode == 403, e
            return False


# --------------------------------------------------------------------------
# init: the admin password from a file, standard input or the environment


def test_init_admin_password_file(ours_target, tmp_path):
    pw = tmp_path / "admin-password"
    pw.write_text("f1le p4ss: with spaces\r\nsecond line is ignored\n")
    home = tmp_path / "t"
    proc = run(ours_target, "init", home, "--admin-password-file", pw)
    assert proc.returncode == 0, proc.stderr
    assert "f1le" not in proc.stdout + proc.stderr
    assert can_log_in(ours_target, home, "f1le p4ss: with spaces")
    assert not can_log_in(ours_target, home, "second line is ignored")


def test_init_admin_password_from_stdin_and_environment(ours_target, tmp_path):
    proc = run(ours_target, "init", tmp_path / "a", "--admin-password-file", "-",
               stdin="st-din\n")
    assert proc.returncode == 0, proc.stderr
    assert can_log_in(ours_target, tmp_path / "a", "st-din")
    proc = run(ours_target, "init", tmp_path / "b", env={"ROUNDUP_ADMIN_PASSWORD": "3nv"})
    assert proc.returncode == 0, proc.stderr
    assert can_log_in(ours_target, tmp_path / "b", "3nv")
    # An option wins over the environment.
    pw = tmp_path / "pw"
    pw.write_text("fr0m-file")
    proc = run(ours_target, "init", tmp_path / "c", "--admin-password-file", pw,
               env={"ROUNDUP_ADMIN_PASSWORD": "3nv"})
    assert proc.returncode == 0, proc.stderr
    assert can_log_in(ours_target, tmp_path / "c", "fr0m-file")


def test_init_admin_password_refusals(ours_target, tmp_path):
    home = tmp_path / "t"
    assert_exit(run(ours_target, "init", home), 2,
                r"needs the admin password: --admin-password-file FILE, "
                r"ROUNDUP_ADMIN_PASSWORD")
    assert_exit(run(ours_target, "init", home, env={"ROUNDUP_ADMIN_PASSWORD": ""}), 2,
                r"the admin password is empty")
    assert_exit(run(ours_target, "init", home, "--admin-password-file", tmp_path / "nope"), 1,
                r"--admin-password-file .*nope: does not exist")
    empty = tmp_path / "empty"
    empty.write_text("\nsecret on line 2\n")
    assert_exit(run(ours_target, "init", home, "--admin-password-file", empty), 1,
                r"its first line is empty")
    pw = tmp_path / "pw"
    pw.write_text("x")
    proc = run(ours_target, "init", home, "--admin-password-file", pw, "--admin-password", "y")
    assert proc.returncode == 2 and "cannot be used with" in proc.stderr, proc.stderr
    assert not home.exists()


# --------------------------------------------------------------------------
# Errors a person can act on


def test_init_never_shows_its_temporary_directory(ours_target, tmp_path):
    template = tmp_path / "tpl"
    shutil.copytree(ours_target_template(), template)
    with open(template / "schema.toml", "a") as f:
        f.write("garbage = [\n")
    home = tmp_path / "new"
    proc = run(ours_target, "init", home, "--admin-password", "x", "--template", template)
    assert_exit(proc, 4, r"tpl/schema\.toml:\d+:\d+: ")
    assert ".init-" not in proc.stderr and ".new." not in proc.stderr, proc.stderr
    shutil.copy(ours_target_template() / "schema.toml", template / "schema.toml")
    with open(template / "config.ini", "a") as f:
        f.write("[broken\n")
    proc = run(ours_target, "init", home, "--admin-password", "x", "--template", template)
    assert_exit(proc, 7, r"tpl/config\.ini:\d+: `\[broken`: a section header must end with `\]`")
    assert ".init-" not in proc.stderr, proc.stderr
    assert not home.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def ours_target_template():
    from harness import REPO
    return REPO / "tracker-template"


def test_missing_directory_says_it_does_not_exist(ours_target, tmp_path):
    assert_exit(run(ours_target, "-i", tmp_path / "nope", "--port", "0"), 3,
                r"nope: does not exist$")
    afile = tmp_path / "file"
    afile.write_text("")
    assert_exit(run(ours_target, "-i", afile, "--port", "0"), 3, r"file: is not a directory")
    assert_exit(run(ours_target, "convert-schema", tmp_path / "nope"), 3,
                r"nope: does not exist")
    (tmp_path / "empty").mkdir()
    assert_exit(run(ours_target, "-i", tmp_path / "empty", "--port", "0"), 3,
                r"empty: not a tracker directory \(no schema\.toml; "
                r"`roundup-xmlrpc-server init` creates trackers\)")


def test_roundup_tracker_without_schema_toml_says_convert_schema(ours_target, tmp_path):
    home = tmp_path / "legacy"
    home.mkdir()
    (home / "schema.py").write_text("# Roundup's schema\n")
    (home / "config.ini").write_text("[main]\n")
    assert_exit(run(ours_target, "-i", home, "--port", "0"), 3,
                r"legacy: a Roundup tracker without schema\.toml: run "
                r"`roundup-xmlrpc-server convert-schema .*legacy` first")


@pytest.mark.parametrize("line, message", [
    ("[xmlrpc_server", r"`\[xmlrpc_server`: a section header must end with `\]`"),
    ("no equals sign here", r"`no equals sign here`: expected `name = value`, "
                            r"a `\[section\]` header or a comment"),
    ("= value", r"`= value`: the option name is missing"),
    ("    # indented comment", r"`    # indented comment`: a comment must start at the "
                             r"beginning of the line"),
])
def test_config_ini_syntax_errors_in_plain_words(ours_target, tracker_copy, line, message):
    config = tracker_copy.home / "config.ini"
    text = config.read_text()
    lines = text.count("\n")
    config.write_text(text + "\n" + line + "\n")
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert_exit(proc, 7, r"config\.ini:%d: %s" % (lines + 2, message))
    assert "Some(" not in proc.stderr and "EOF" not in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def template_tracker(ours_target, tmp_path_factory):
    return ours_target.make_tracker(tmp_path_factory.mktemp("operator") / "demo")


@pytest.fixture
def tracker_copy(template_tracker, tmp_path):
    return copy_tracker(template_tracker, tmp_path / "demo")


def test_schema_migrations_at_start_up_are_logged(ours_target, tracker_copy):
    schema = tracker_copy.home / "schema.toml"
    text = schema.read_text()
    old = "[class.issue.properties]\n"
    assert old in text
    text = text.replace(old, old + 'severity = "String"\nwatchers = '
                        '{ type = "Multilink", to = "user" }\n', 1)
    text += '\n[class.milestone]\nkey = "name"\nproperties = { name = "String" }\n'
    schema.write_text(text)
    with Server(ours_target, tracker_copy) as srv:
        assert srv.admin().create("milestone", "name=1.0") == "1"
        log = srv.stderr_text()
    for pattern in [r"schema migration: column added.*class=issue.*column=_severity",
                    r"schema migration: Multilink table added.*class=issue.*property=watchers",
                    r"schema migration: class added.*class=milestone",
                    r"schema migration: database brought up to schema\.toml"]:
        assert re.search(pattern, log), (pattern, log)
    # The next start has nothing to migrate.
    with Server(ours_target, tracker_copy) as srv:
        srv.admin().lookup("user", "admin")
        log = srv.stderr_text()
    assert log.count("schema migration") == 4, log


# --------------------------------------------------------------------------
# Shell completions, run in the real shells


def shell(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s is needed for this test (apt-get install %s)" % (name, name))
    return path


def completion_script(ours_target, tmp_path, sh):
    proc = run(ours_target, "completions", sh)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "empty script"
    script = tmp_path / ("completion." + sh)
    script.write_text(proc.stdout)
    return script


def bash_complete(ours_target, tmp_path, words):
    """The completions bash offers for ``words`` (the last one being completed)."""
    script = completion_script(ours_target, tmp_path, "bash")
    line = " ".join([BIN_NAME] + words)
    program = r'''
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$LINE"
COMP_POINT=${#COMP_LINE}
func=$(complete -p roundup-xmlrpc-server | sed -E 's/.*-F ([^ ]+).*/\1/')
"$func" roundup-xmlrpc-server "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''
    proc = subprocess.run([shell("bash"), "-c", program, "bash", str(script), BIN_NAME, *words],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          env={**os.environ, "LINE": line}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completion(ours_target, tmp_path):
    subcommands = bash_complete(ours_target, tmp_path, [""])
    for word in ("init", "demo", "convert-schema", "completions", "--port", "--trusted-proxy"):
        assert word in subcommands, subcommands
    # Options of a subcommand (clap_complete alone gets these wrong for a
    # hyphenated program name, clap issue 6421).
    assert set(bash_complete(ours_target, tmp_path, ["init", "--admin-pass"])) == {
        "--admin-password", "--admin-password-file"}
    assert set(bash_complete(ours_target, tmp_path, ["init", "--t"])) == {"--template"}
    # bash offers the values together with the options.
    words = set(bash_complete(ours_target, tmp_path, ["completions", ""]))
    assert {"bash", "fish", "zsh"} <= words and "init" not in words, words
    assert bash_complete(ours_target, tmp_path, ["--forwarded-header", ""]) == [
        "x-forwarded-for", "forwarded"]


def test_fish_completion(ours_target, tmp_path):
    script = completion_script(ours_target, tmp_path, "fish")

    def complete(line):
        proc = subprocess.run(
            [shell("fish"), "--no-config", "-c",
             "source %s; complete --do-complete %s" % (script, fish_quote(line))],
            capture_output=True, text=True, timeout=RUN_TIMEOUT,
            env={**os.environ, "HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        return [ln.split("\t")[0] for ln in proc.stdout.splitlines()]

    words = complete(BIN_NAME + " ")
    for word in ("init", "demo", "convert-schema", "completions"):
        assert word in words, words
    assert set(complete(BIN_NAME + " init --admin-pass")) == {
        "--admin-password-file", "--admin-password"}
    assert set(complete(BIN_NAME + " completions ")) == {"bash", "zsh", "fish"}


def fish_quote(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def zsh_complete(ours_target, tmp_path, line):
    """The matches zsh's completion system offers for ``line`` + TAB: an
    interactive zsh on a pseudo-terminal (ZLE needs one) with the script in
    $fpath and compinit run, where `compadd` also writes its matches to a file."""
    script = completion_script(ours_target, tmp_path, "zsh")
    fpath = tmp_path / "zfunc"
    fpath.mkdir(exist_ok=True)
    shutil.copy(script, fpath / ("_" + BIN_NAME))
    out = tmp_path / "zsh-matches"
    out.unlink(missing_ok=True)
    pid, fd = pty.fork()
    if pid == 0:  # the child: zsh without any user or system startup file
        os.execve(shell("zsh"), ["zsh", "-f", "-i"],
                  {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TERM": "dumb"})
    transcript = []

    def pump(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    transcript.append(os.read(fd, 65536))
                except OSError:
                    return

    try:
        os.write(fd, ("PS1='> '; fpath=(%s $fpath); autoload -U compinit; "
                      "compinit -u -d %s/zcompdump\n" % (fpath, tmp_path)).encode())
        os.write(fd, ('compadd () { local -a m; builtin compadd -O m "$@"; '
                      'print -rl -- $m >> %s; builtin compadd "$@" }\n' % out).encode())
        pump(0.5)
        os.write(fd, (line + "\t").encode())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
            pump(0.1)
        pump(0.3)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    assert out.exists(), b"".join(transcript).decode("utf-8", "replace")[-2000:]
    return set(out.read_text().split())


def test_zsh_completion(ours_target, tmp_path):
    words = zsh_complete(ours_target, tmp_path, BIN_NAME + " ")
    assert {"init", "demo", "convert-schema", "completions"} <= words, words
    assert zsh_complete(ours_target, tmp_path, BIN_NAME + " completions ") == {
        "bash", "zsh", "fish"}
    assert zsh_complete(ours_target, tmp_path, BIN_NAME + " init --admin-pass") == {
        "--admin-password", "--admin-password-file"}
    assert zsh_complete(ours_target, tmp_path, BIN_NAME + " --forwarded-header ") == {
        "x-forwarded-for", "forwarded"}
