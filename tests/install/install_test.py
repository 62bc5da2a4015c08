#!/usr/bin/env python3
"""The install (SPEC section 7, "Install"), checked in a temporary folder.

1. `cmake --install BUILD --prefix TMP/prefix`: every file where
   cmake/install.cmake says (the layout file the build writes; with
   GNUInstallDirs' defaults that is sbin/echod, bin/echo-client,
   bin/echo-stress, share/man/man8/echod.8, share/man/man1/echo-client.1
   and echo-stress.1, lib/systemd/system/ with the four units), the
   programs executable, the units' ExecStart= naming the installed echod.
2. `mandoc -T lint -W warning` on the three installed pages: no output.
3. Each program's --help against its page: every option in the help is an
   item of the page's option list (.It Fl ...), every option item of the
   page is in the help, and every default and range the help gives for an
   option is in that option's text in the page.
4. `systemd-analyze verify` of the four installed units: exit 0 and no
   output (verify says unknown keys and such on stderr with status 0).
5. `systemd-analyze security --offline=true` of both services: the
   "Overall exposure level" at most --max-exposure.
6. Once more with DESTDIR=TMP/stage and --prefix /usr: everything staged
   under TMP/stage, ExecStart= naming /usr/sbin/echod (no DESTDIR in it).

Nothing is written outside TMP, except that cmake --install rewrites the
build's install_manifest.txt, which is put back as it was, and the units
it generates in BUILD/systemd/. No running systemd is needed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

UNITS = ["echod.socket", "echod.service", "echod-inetd.socket",
         "echod-inetd@.service"]
SERVICES = ["echod.service", "echod-inetd@.service"]
# program, section, --help invocations whose options the page must list
PAGES = [
    ("echod", "8", "sbindir", [["--help"]]),
    ("echo-client", "1", "bindir", [["--help"]]),
    ("echo-stress", "1", "bindir", [["--help"], ["merge", "--help"]]),
]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def note(msg):
    print(msg, flush=True)


def run(cmd, env=None, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=60)
    if check and r.returncode != 0:
        fail("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout,
                                    r.stderr))
    return r


def need(tool, package):
    path = shutil.which(tool)
    if path is None:
        print("install_test: %s not found: apt-get install %s"
              % (tool, package), file=sys.stderr)
        sys.exit(1)
    return path


def read_layout(path):
    layout = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                k, v = line.split("=", 1)
                layout[k] = v
    for k in ("sbindir", "bindir", "mandir", "unitdir"):
        if k not in layout:
            sys.exit("install_test: %s has no %s" % (path, k))
    return layout


def install(cmake, build, prefix, destdir):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir:
        env["DESTDIR"] = destdir
    r = run([cmake, "--install", build, "--prefix", prefix], env=env)
    return r.returncode == 0


def where(layout, key, prefix, stage):
    """Where files of layout[key] are on disk, and as the installed system
    names them."""
    d = layout[key]
    named = d if os.path.isabs(d) else os.path.join(prefix, d)
    on_disk = (stage + named) if stage else named
    return on_disk, named


def expected_files(layout, prefix, stage):
    files = {}
    sbin, sbin_named = where(layout, "sbindir", prefix, stage)
    bindir, _ = where(layout, "bindir", prefix, stage)
    mandir, _ = where(layout, "mandir", prefix, stage)
    unitdir, _ = where(layout, "unitdir", prefix, stage)
    files["echod"] = os.path.join(sbin, "echod")
    files["echo-client"] = os.path.join(bindir, "echo-client")
    files["echo-stress"] = os.path.join(bindir, "echo-stress")
    for prog, sec, _, _ in PAGES:
        files[prog + "." + sec] = os.path.join(mandir, "man" + sec,
                                               prog + "." + sec)
    for u in UNITS:
        files[u] = os.path.join(unitdir, u)
    return files, os.path.join(sbin_named, "echod")


def check_files(files, echod_named, label):
    ok = True
    for name, path in files.items():
        if not os.path.isfile(path):
            fail("%s: %s is not at %s" % (label, name, path))
            ok = False
        elif name in ("echod", "echo-client", "echo-stress") and \
                not os.access(path, os.X_OK):
            fail("%s: %s is not executable" % (label, path))
            ok = False
    for u in ("echod.service", "echod-inetd@.service"):
        if not os.path.isfile(files[u]):
            continue
        with open(files[u]) as f:
            text = f.read()
        execs = re.findall(r"^ExecStart=(\S+)", text, re.M)
        if execs != [echod_named]:
            fail("%s: %s: ExecStart= names %s, not %s"
                 % (label, u, execs, echod_named))
            ok = False
        if re.search(r"@[A-Z_]+@", text):
            fail("%s: %s: an unreplaced @VARIABLE@" % (label, u))
            ok = False
    if ok:
        note("%s: all %d files in place, ExecStart=%s"
             % (label, len(files), echod_named))
    return ok


# ---- manual pages against --help ----

OPT_RE = re.compile(r"^\s+(?:(-[A-Za-z0-9])(?:,\s*(--[a-z][a-z0-9-]*))?"
                    r"|(--[a-z][a-z0-9-]*))(?=[\s=,]|$)")
RANGE_RE = re.compile(r"(?<![\d.])(\d+)-(\d+)(?![\d.])")
DEFAULT_RE = re.compile(r"default:?\s+(\d+(?:\.\d+)?)")


def help_entries(text):
    """{frozenset of spellings: the entry's text (continuation lines
    joined)} from a --help text."""
    entries = {}
    cur = None
    for line in text.splitlines():
        m = OPT_RE.match(line)
        if m:
            names = frozenset(x for x in m.groups() if x)
            cur = names
            entries[cur] = line[m.end():]
        elif cur is not None and line.startswith(" " * 8) and line.strip():
            entries[cur] += " " + line.strip()
        else:
            cur = None
    return entries


def page_items(src):
    """The option items of a page: for each `.It Fl ...` line, the set of
    option spellings it names (Fl x -> -x, Fl -xx -> --xx)."""
    items = []
    for line in src.splitlines():
        if not line.startswith(".It ") or " Fl " not in " " + line[4:]:
            continue
        toks = line[4:].split()
        names = set()
        for i, t in enumerate(toks[:-1]):
            if t == "Fl":
                arg = toks[i + 1]
                names.add("-" + arg)
        items.append(names)
    return items


def rendered_items(text):
    """{spelling: the item's text} from `mandoc -T ascii` output: an item
    starts at indentation 5 with '-', its body runs until the next line at
    indentation 5 or less."""
    out = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^ {5}(-\S.*)$", line)
        if m:
            head = m.group(1)
            body = [head]
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or
                                      re.match(r"^ {6,}", lines[j])):
                body.append(lines[j].strip())
                j += 1
            joined = " ".join(body)
            for name in re.findall(r"(?<![\w-])(--?[A-Za-z0-9][a-z0-9-]*)",
                                   head):
                out.setdefault(name, joined)
            i = j
        else:
            i += 1
    return out


def check_page(prog, sec, binary, helps, page, mandoc):
    label = "%s(%s)" % (prog, sec)
    with open(page) as f:
        src = f.read()
    r = subprocess.run([mandoc, "-T", "lint", "-W", "warning", page],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    if r.stdout.strip() or r.returncode != 0:
        fail("%s: mandoc -T lint -W warning (exit %d):\n%s"
             % (label, r.returncode, r.stdout))
    else:
        note("%s: mandoc -T lint -W warning: clean" % label)

    entries = {}
    for args in helps:
        h = run([binary] + args)
        if h.returncode != 0 or not h.stdout:
            fail("%s %s: no help" % (binary, " ".join(args)))
            continue
        got = help_entries(h.stdout)
        if not got:
            fail("%s %s: no options found in the help"
                 % (binary, " ".join(args)))
        entries.update(got)
    help_names = set()
    for names in entries:
        help_names |= names

    page_names = set()
    for names in page_items(src):
        page_names |= names
    missing = sorted(help_names - page_names)
    extra = sorted(page_names - help_names)
    if missing:
        fail("%s: options of --help with no item in the page: %s"
             % (label, " ".join(missing)))
    if extra:
        fail("%s: option items of the page that --help does not know: %s"
             % (label, " ".join(extra)))

    r = run([mandoc, "-T", "ascii", page])
    text = re.sub(r".\x08", "", r.stdout)
    items = rendered_items(text)
    bad = []
    for names, desc in entries.items():
        body = None
        for n in names:
            if n in items:
                body = items[n]
                break
        if body is None:
            continue  # already reported as missing
        numbers = set()
        for a, b in RANGE_RE.findall(desc):
            numbers.update((a, b))
        numbers.update(DEFAULT_RE.findall(desc))
        plain = body.replace(",", "")
        for num in sorted(numbers):
            if not re.search(r"(?<![\d.])%s(?![\d])" % re.escape(num),
                             plain):
                bad.append("%s: %s" % ("/".join(sorted(names)), num))
    if bad:
        fail("%s: defaults or bounds of --help missing from the page's "
             "item: %s" % (label, "; ".join(bad)))
    if not missing and not extra and not bad:
        note("%s: all %d options of --help documented, defaults and "
             "ranges agree" % (label, len(entries)))


# ---- systemd ----

def check_units(analyze, unitdir, mandir, units):
    env = dict(os.environ)
    # Our units first, then the vendor units they depend on (sockets.target
    # and the like): not /etc or /run, whose local changes are no business
    # of this test.
    env["SYSTEMD_UNIT_PATH"] = ":".join(
        [unitdir, "/usr/lib/systemd/system", "/lib/systemd/system"])
    env["SYSTEMD_LOG_COLOR"] = "0"
    env["SYSTEMD_PAGER"] = "cat"
    man = "--man=no"
    if shutil.which("man"):
        # Documentation=man:echod(8) must name a page that exists: the
        # installed one.
        man = "--man=yes"
        env["MANPATH"] = mandir
    cmd = [analyze, "verify", man] + [os.path.join(unitdir, u)
                                      for u in units]
    r = run(cmd, env=env, check=False)
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or out:
        fail("systemd-analyze verify (exit %d):\n%s" % (r.returncode, out))
    else:
        note("systemd-analyze verify %s: %s: clean" % (man, " ".join(units)))

    for svc in SERVICES:
        r = run([analyze, "security", "--offline=true", "--no-pager",
                 os.path.join(unitdir, svc)], env=env, check=False)
        m = re.search(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)",
                      r.stdout)
        if not m:
            fail("systemd-analyze security %s (exit %d): no overall "
                 "exposure level:\n%s%s" % (svc, r.returncode, r.stdout,
                                            r.stderr))
            continue
        score = float(m.group(2))
        left = [l.rstrip() for l in r.stdout.splitlines()
                if l.startswith("\u2717")]
        note("systemd-analyze security --offline=true %s: %.1f%s"
             % (svc, score, "".join("\n    " + re.sub(r"\s{2,}", "  ", l)
                                    for l in left)))
        if score > ARGS.max_exposure:
            fail("%s: exposure %.1f is above %.1f"
                 % (svc, score, ARGS.max_exposure))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmake", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--layout", required=True)
    ap.add_argument("--max-exposure", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true",
                    help="leave the temporary folder")
    ARGS = ap.parse_args()

    mandoc = need("mandoc", "mandoc")
    analyze = need("systemd-analyze", "systemd")
    layout = read_layout(ARGS.layout)
    manifest = os.path.join(ARGS.build, "install_manifest.txt")
    saved = None
    if os.path.exists(manifest):
        with open(manifest, "rb") as f:
            saved = f.read()

    tmp = tempfile.mkdtemp(prefix="echod-install-")
    try:
        prefix = os.path.join(tmp, "prefix")
        # A folder outside the prefix (an absolute unit or program folder)
        # is staged under DESTDIR, and the prefix made to lead there, so
        # that nothing is written outside tmp.
        stage = None
        if any(os.path.isabs(layout[k]) for k in layout):
            stage = os.path.join(tmp, "stage")
        note("layout: " + ", ".join("%s=%s" % kv for kv in layout.items()))
        if install(ARGS.cmake, ARGS.build, prefix, stage):
            if stage:
                os.symlink(stage + prefix, prefix)
            files, echod_named = expected_files(layout, prefix, stage)
            check_files(files, echod_named, "--prefix " + prefix)
            mandir, _ = where(layout, "mandir", prefix, stage)
            for prog, sec, key, helps in PAGES:
                check_page(prog, sec, files[prog], helps,
                           files[prog + "." + sec], mandoc)
            unitdir = os.path.dirname(files["echod.service"])
            if all(os.path.isfile(files[u]) for u in UNITS):
                check_units(analyze, unitdir, mandir, UNITS)

        # Staged as a package build does it: DESTDIR, --prefix /usr.
        stage2 = os.path.join(tmp, "destdir")
        if install(ARGS.cmake, ARGS.build, "/usr", stage2):
            files, echod_named = expected_files(layout, "/usr", stage2)
            check_files(files, echod_named, "DESTDIR=%s --prefix /usr"
                        % stage2)
            with open(manifest) as f:
                listed = [l.strip() for l in f if l.strip()]
            outside = [p for p in listed
                       if not os.path.exists(stage2 + p)]
            if outside or len(listed) != len(files):
                fail("DESTDIR install: manifest lists %d files, %d of "
                     "them not under DESTDIR: %s"
                     % (len(listed), len(outside), outside))
    finally:
        if saved is None:
            if os.path.exists(manifest):
                os.unlink(manifest)
        else:
            with open(manifest, "wb") as f:
                f.write(saved)
        if ARGS.keep:
            note("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        print("install: %d check(s) failed" % len(failures))
        return 1
    print("install: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
