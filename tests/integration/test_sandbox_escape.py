"""Black-box tests of the children's sandbox (SPEC section 3, "Sandbox").

The design under test: the parent builds ONE seccomp filter and loads it
into itself once, after it listens and before the first fork; every child
inherits it. Each child, before it reads a byte, closes every descriptor it
does not need, drops to uid/gid 65534 when echod runs as root, sets
RLIMIT_NPROC to 0, drops all capabilities, enters a Landlock domain of its
own and asks for SIGKILL when the parent dies. Children hold no writable
shared memory: the shutdown flag is a read-only shared mapping
"/memfd:echod-control (deleted)".

Cases:

  filter_loaded_once       strace -f counts the filter loads over 100 and
                           over 1,000 connections: exactly one, in the parent.
  child_status             /proc/<pid>/status, limits and descriptors of the
                           parent and of three children; the children die
                           when the parent is SIGKILLed.
  child_forbidden_actions  gdb attaches to a live child and makes it run each
                           forbidden system call; each must fail (return -1)
                           or kill the child with SIGSYS, and have no effect.
                           gcov's own open (O_RDWR|O_CREAT, 0666) must be
                           killed in a release build; a coverage build lets
                           that shape through the filter (its children
                           write their counts, SECURITY.md "Coverage
                           builds"), and Landlock must then refuse it
                           outside the build directory: EACCES.
  control_page_readonly    no rw-s mapping in a child; the echod-control
                           mapping cannot be written through /proc/<pid>/mem,
                           not even by root.

Tools: strace (filter_loaded_once), gdb (child_forbidden_actions).

How gdb makes the child act: `gdb -p CHILD -batch -nx` interrupts the child
in ppoll, writes the call's arguments (paths, sockaddr, iovecs, argv) with
`set *(unsigned long *)ADDR = WORD` into the lowest page of the child's
[stack] mapping (never used at the depth the child runs), then
`print (long)syscall(NR, ...)` and `print *__errno_location()` and detaches;
ppoll resumes as if nothing happened. No string literal is passed to the
call: gdb would allocate it with the child's own malloc, which may need
brk/mmap and be killed by the filter before the action itself runs.

Environment:
  ECHOD_SBX_ACTIONS  child_forbidden_actions runs only the actions whose
                   name contains one of these |-separated strings.
  ECHOD_SBX_CONNS  connection counts of filter_loaded_once, comma-separated,
                   smallest first (default "100,1000"). The counts are run in
                   that order and the case stops at the first count that does
                   not show exactly one load: a binary whose children each
                   load a filter never gets the large run (a high-rate churn
                   of per-child filters can wedge the kernel's BPF allocator).
"""

import errno
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import harness as h


# x86_64 system call numbers (asm/unistd_64.h).
NR = {
    "open": 2,
    "mprotect": 10,
    "socket": 41,
    "connect": 42,
    "bind": 49,
    "clone": 56,
    "fork": 57,
    "execve": 59,
    "kill": 62,
    "ptrace": 101,
    "setuid": 105,
    "setresuid": 117,
    "openat": 257,
    "accept4": 288,
    "process_vm_writev": 311,
    "clone3": 435,
}
AT_FDCWD = -100
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL = 0, 0o1, 0o2, 0o100, 0o200
AF_UNIX, AF_INET = 1, 2
SOCK_STREAM, SOCK_DGRAM = 1, 2
PTRACE_ATTACH = 16
PROT_READ, PROT_WRITE = 1, 2
SIGCHLD = 17
NOBODY = 65534
IS_ROOT = os.geteuid() == 0


def coverage_build():
    """Whether the echod under test is a coverage build (-DECHOD_COVERAGE=ON):
    its children write gcov's counts before they leave, so the binary holds
    the paths of its .gcda files, and its filter lets gcov's calls through
    (src/sandbox.c)."""
    with open(h.ECHOD, "rb") as f:
        return b".gcda\0" in f.read()


def have_landlock():
    """Whether this kernel has Landlock (its ABI version is above 0)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(ctypes.c_long(444), None, ctypes.c_long(0),
                        ctypes.c_long(1)) > 0


# --- /proc helpers -----------------------------------------------------------

def fds_of(pid):
    """{fd: readlink target} of pid."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            pass
    return out


def sock_inode(link):
    m = re.match(r"socket:\[(\d+)\]$", link)
    return int(m.group(1)) if m else None


def _hexaddr(s):
    a, p = s.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(a, 16))), int(p, 16)


def tcp_sockets(pid):
    """{inode: (local (ip, port), remote (ip, port), state hex)} as pid's
    network namespace sees them."""
    out = {}
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for ln in f:
            p = ln.split()
            out[int(p[9])] = (_hexaddr(p[1]), _hexaddr(p[2]), p[3])
    return out


def unix_sockets(pid):
    """{inode: type} (1 stream, 2 dgram, 5 seqpacket)."""
    out = {}
    with open("/proc/%d/net/unix" % pid) as f:
        next(f)
        for ln in f:
            p = ln.split()
            out[int(p[6])] = int(p[4], 16)
    return out


def listener_fd(e):
    """The descriptor number under which the parent holds its listener."""
    tcp = tcp_sockets(e.pid)
    for fd, link in fds_of(e.pid).items():
        ino = sock_inode(link)
        if ino in tcp and tcp[ino][2] == "0A" and tcp[ino][0][1] == e.port:
            return fd, ino
    raise h.TestFailure("no listening socket on port %d among echod's "
                        "descriptors %r" % (e.port, fds_of(e.pid)))


def client_fd(kid, port, cport):
    """The descriptor number of the child's end of connection cport."""
    tcp = tcp_sockets(kid)
    for fd, link in fds_of(kid).items():
        ino = sock_inode(link)
        if ino in tcp and tcp[ino][0][1] == port and tcp[ino][1][1] == cport:
            return fd
    raise h.TestFailure("child %d holds no socket of connection :%d; its "
                        "descriptors: %r" % (kid, cport, fds_of(kid)))


def maps_of(pid):
    """[(start, end, perms, name)] of pid."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for ln in f:
            p = ln.split(None, 5)
            a, b = p[0].split("-")
            out.append((int(a, 16), int(b, 16), p[1],
                        p[5].strip() if len(p) > 5 else ""))
    return out


def control_mapping(pid):
    for m in maps_of(pid):
        if "echod-control" in m[3]:
            return m
    return None


def stack_scratch(pid):
    """An address in the lowest page of pid's stack mapping: inside the
    mapping, far below anything the process (or a gdb inferior call, which
    pushes its frame just below the stack pointer) uses."""
    for a, b, perms, name in maps_of(pid):
        if name == "[stack]":
            h.check(b - a >= 64 * 1024, "stack of %d is only %d bytes"
                    % (pid, b - a))
            return a + 256
    raise h.TestFailure("no [stack] mapping in %d" % pid)


def limits_nproc(pid):
    with open("/proc/%d/limits" % pid) as f:
        for ln in f:
            if ln.startswith("Max processes"):
                p = ln.split()
                return p[2], p[3]
    return None


def alive(pid):
    st = h.proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(pid):
    """Every process below pid (any state)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k, _ in h.children(p):
            out.append(k)
            todo.append(k)
    return out


# --- connections -------------------------------------------------------------

def open_served(e, msg=b"hello\n"):
    """A new connection, echoed once, and the pid of the child serving it."""
    before = set(e.live_children())
    s = h.connect(e.port)
    s.sendall(msg)
    h.eq(h.recv_exact(s, len(msg)), msg, "echo on a new connection")
    deadline = time.monotonic() + h.T(5)
    while True:
        new = set(e.live_children()) - before
        if len(new) == 1:
            return s, new.pop()
        h.check(time.monotonic() < deadline,
                "cannot tell the child of the new connection: new %r" % new)
        time.sleep(0.02)


def still_echoes(s, msg=b"still here\n"):
    try:
        s.sendall(msg)
        return h.recv_exact(s, len(msg), timeout=h.T(3)) == msg
    except (OSError, h.TestFailure):
        return False


def churn(port, n, parallel=10):
    """n short round trips, about `parallel` at once."""
    errors = []
    lock = threading.Lock()
    left = [n]

    def worker(k):
        i = 0
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            i += 1
            try:
                h.roundtrip(port, b"churn %d.%d\n" % (k, i))
            except Exception as ex:  # reported by the caller
                errors.append(ex)
                return

    ts = [threading.Thread(target=worker, args=(k,), daemon=True)
          for k in range(parallel)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(h.T(120))
    h.check(not any(t.is_alive() for t in ts), "clients did not finish")
    h.check(not errors, "client errors: %s" % errors[:3])


# --- 1. filter_loaded_once ---------------------------------------------------

class StracedEchod(h.Echod):
    """echod started under strace -f: self.proc is strace, self.pid is
    echod itself (read from its "listening on" line)."""

    def __init__(self, args, trace_file):
        self.args = list(args)
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.port = None
        self.addr = None
        self.stopped = False
        argv = ["strace", "-f", "-qq", "-e", "trace=seccomp,prctl",
                "-e", "signal=none", "-o", trace_file, h.ECHOD] + self.args
        h.log("start: %s" % " ".join(argv))
        # LeakSanitizer cannot work under ptrace (in ASan builds echod runs
        # its leak check when it installs the filter): off under strace.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":detect_leaks=0").lstrip(":")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        self.pid = self.proc.pid
        h._servers.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        m = self.wait_log(r"echod\[(\d+)\]: listening on (\S+):(\d+)\s*$",
                          h.T(20), what="listening line")
        self.pid = int(m.group(1))
        self.addr = m.group(2)
        self.port = int(m.group(3))
        h.check(h.proc_stat(self.pid) and
                h.proc_stat(self.pid)[1] == self.proc.pid,
                "pid %d of the listening line is not strace's child"
                % self.pid)
        h.log("echod pid %d (under strace pid %d) listening on %s:%d" %
              (self.pid, self.proc.pid, self.addr, self.port))


LOAD_RE = re.compile(r"^(seccomp\(SECCOMP_SET_MODE_FILTER\b|"
                     r"prctl\(PR_SET_SECCOMP, SECCOMP_MODE_FILTER\b)")


def filter_loads(path):
    """([(pid, call, result)] of every filter-load attempt in an strace -f
    output, result an int or None when the process died in the call)."""
    pending = {}
    calls = []
    with open(path, errors="replace") as f:
        for ln in f:
            m = re.match(r"^(\d+)\s+(.*)$", ln.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            r = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", rest)
            if r:
                if pid not in pending:
                    continue
                rest = pending.pop(pid) + r.group(2)
            elif rest.endswith("<unfinished ...>"):
                pending[pid] = rest[:-len("<unfinished ...>")].rstrip()
                continue
            if not LOAD_RE.match(rest):
                continue
            res = re.search(r"\)\s+=\s+(-?\d+|\?)", rest)
            val = int(res.group(1)) if res and res.group(1) != "?" else None
            calls.append((pid, rest, val))
    for pid, rest in pending.items():
        if LOAD_RE.match(rest):
            calls.append((pid, rest, None))
    return calls


def traced_run(n):
    """echod under strace, n connections, SIGTERM; returns (echod pid,
    filter-load attempts)."""
    trace = os.path.join(h.TMPDIR, "strace.%d.out" % n)
    e = StracedEchod(["-p", "0", "-b", "127.0.0.1"], trace)
    try:
        t0 = time.monotonic()
        churn(e.port, n)
        secs = time.monotonic() - t0
        h.log("%d connections in %.2fs (%.0f/s) under strace" %
              (n, secs, n / secs))
        e.wait_no_children(h.T(10))
        st = e.stats()
        h.eq(h.stat_int(st, "accepted"), n, "accepted counter")
        h.eq(h.stat_int(st, "sandbox_kills", "sandbox"), 0, "sandbox kills")
    finally:
        e.stop(timeout=h.T(20))
    calls = filter_loads(trace)
    for pid, call, val in calls[:12]:
        h.log("  pid %d%s: %s" % (pid, " (echod)" if pid == e.pid else "",
                                  call[:150]))
    if len(calls) > 12:
        h.log("  ... %d more" % (len(calls) - 12))
    return e.pid, calls


def need(tool):
    h.check(shutil.which(tool) is not None,
            "%s is not installed (apt-get install %s): this case needs it"
            % (tool, tool))


def case_filter_loaded_once():
    need("strace")
    spec = os.environ.get("ECHOD_SBX_CONNS", "100,1000")
    counts = [int(x) for x in spec.split(",") if x.strip()]
    h.check(counts and all(c > 0 for c in counts),
            "ECHOD_SBX_CONNS=%r: want positive counts" % spec)
    counts.sort()
    results = {}
    for n in counts:
        pid, calls = traced_run(n)
        loads = [c for c in calls if c[2] is not None and c[2] >= 0]
        h.log("%d connections: %d filter loads, %d load attempts in all "
              "(failed ones are libseccomp's feature probes)" %
              (n, len(loads), len(calls)))
        results[n] = (len(loads), len(calls))
        h.check(len(loads) == 1,
                "%d connections: %d successful filter loads, expected "
                "exactly 1 (one per connection means each child compiles "
                "and loads its own filter)%s" %
                (n, len(loads), "" if n == counts[-1] else
                 "; the larger counts %s are not run" % counts[1:]))
        h.eq(loads[0][0], pid, "pid that loaded the filter (echod's is %d)"
             % pid)
    first = results[counts[0]]
    for n in counts[1:]:
        h.eq(results[n], first, "(loads, attempts) for %d connections vs "
             "%d" % (n, counts[0]))


# --- 2. child_status ---------------------------------------------------------

def check_sandbox_status(pid, who, problems):
    st = h.proc_status(pid)
    if st is None:
        problems.append("%s %d vanished" % (who, pid))
        return None
    for k, want in (("Seccomp", "2"), ("Seccomp_filters", "1"),
                    ("NoNewPrivs", "1")):
        if st.get(k) != want:
            problems.append("%s %d: %s is %r, expected %r" %
                            (who, pid, k, st.get(k), want))
    return st


def case_child_status():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    conns = []
    problems = []
    try:
        for i in range(3):
            s, kid = open_served(e, b"status %d\n" % i)
            conns.append((s, kid))
        pst = check_sandbox_status(e.pid, "parent", problems)
        h.log("parent %d: Seccomp=%s Seccomp_filters=%s NoNewPrivs=%s "
              "Uid=%s" % (e.pid, pst.get("Seccomp"),
                          pst.get("Seccomp_filters"), pst.get("NoNewPrivs"),
                          pst.get("Uid")))
        my_uid, my_gid = os.getuid(), os.getgid()
        parent_stderr = os.readlink("/proc/%d/fd/2" % e.pid)
        for s, kid in conns:
            st = check_sandbox_status(kid, "child", problems)
            if st is None:
                continue
            lim = limits_nproc(kid)
            h.log("child %d: Seccomp=%s Seccomp_filters=%s NoNewPrivs=%s "
                  "Uid=%s Gid=%s Groups=%r CapEff=%s CapPrm=%s "
                  "Max processes=%s" %
                  (kid, st.get("Seccomp"), st.get("Seccomp_filters"),
                   st.get("NoNewPrivs"), st.get("Uid"), st.get("Gid"),
                   st.get("Groups"), st.get("CapEff"), st.get("CapPrm"),
                   lim))
            if IS_ROOT:
                want_uid = want_gid = NOBODY
            else:
                want_uid, want_gid = my_uid, my_gid
            for k, want in (("Uid", want_uid), ("Gid", want_gid)):
                got = st.get(k, "").split()
                if got != [str(want)] * 4:
                    problems.append("child %d: %s is %r, expected %d four "
                                    "times" % (kid, k, st.get(k), want))
            if IS_ROOT and st.get("Groups", "") != "":
                problems.append("child %d: Groups is %r, expected empty" %
                                (kid, st.get("Groups")))
            for k in ("CapEff", "CapPrm"):
                if int(st.get(k, "1"), 16) != 0:
                    problems.append("child %d: %s is %s, expected 0" %
                                    (kid, k, st.get(k)))
            if lim != ("0", "0"):
                problems.append("child %d: Max processes (soft, hard) is "
                                "%r, expected ('0', '0')" % (kid, lim))
            # Descriptors: 0 and 1 /dev/null, 2 echod's stderr, the client
            # TCP socket and one SOCK_SEQPACKET unix socket.
            fds = fds_of(kid)
            h.log("child %d descriptors: %r" % (kid, fds))
            if fds.get(0) != "/dev/null" or fds.get(1) != "/dev/null":
                problems.append("child %d: fd 0/1 are %r/%r, expected "
                                "/dev/null" % (kid, fds.get(0), fds.get(1)))
            if fds.get(2) != parent_stderr:
                problems.append("child %d: fd 2 is %r, echod's stderr is %r"
                                % (kid, fds.get(2), parent_stderr))
            tcp = tcp_sockets(kid)
            unix = unix_sockets(kid)
            rest = {fd: l for fd, l in fds.items() if fd > 2}
            cp = h.cport(s)
            kinds = []
            for fd, link in sorted(rest.items()):
                ino = sock_inode(link)
                if ino in tcp and tcp[ino][1][1] == cp:
                    kinds.append("client")
                elif ino in unix and unix[ino] == 5:
                    kinds.append("seqpacket")
                else:
                    kinds.append("other %s" % link)
            if sorted(kinds) != ["client", "seqpacket"]:
                problems.append("child %d: descriptors beyond 0-2 are %r "
                                "(%r), expected the client socket and one "
                                "SOCK_SEQPACKET unix socket" %
                                (kid, rest, kinds))
        for s, kid in conns:
            h.check(still_echoes(s), "child %d stopped echoing" % kid)
        # The children asked for SIGKILL when the parent dies.
        kids = [k for _, k in conns]
        os.kill(e.pid, signal.SIGKILL)
        e.proc.wait(h.T(5))
        e.stopped = True
        deadline = time.monotonic() + h.T(3)
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [k for k in kids if alive(k)]
        h.log("parent SIGKILLed: %d of %d children left after %.2fs" %
              (len(left), len(kids), h.T(3) - max(0, deadline -
                                                   time.monotonic())))
        if left:
            problems.append("children %r outlived their SIGKILLed parent"
                            % left)
            for k in left:
                os.kill(k, signal.SIGKILL)
        for p in problems:
            h.log("PROBLEM: " + p)
        h.check(not problems, "%d problems:\n  %s" %
                (len(problems), "\n  ".join(problems)))
    finally:
        for s, _ in conns:
            s.close()
        if not e.stopped:
            e.stop()


# --- 3. child_forbidden_actions ----------------------------------------------

def gdb_syscall(pid, nr, args, data=b"", at=0):
    """Attach gdb to pid, write data at address `at` of its memory, make it
    call syscall(nr, *args), read errno, detach. Returns a dict: ret, errno,
    signal (the process died of it), exec (it executed a new program),
    out (gdb's output)."""
    cmds = ["set pagination off", "set confirm off", "set width 0",
            "set debuginfod enabled off"]
    data = bytes(data)
    for off in range(0, len(data), 8):
        word = int.from_bytes(data[off:off + 8].ljust(8, b"\0"), "little")
        cmds.append("set *(unsigned long *)0x%x = 0x%x" % (at + off, word))
    cmds.append("echo ECHOD-SBX-CALL\\n")
    cmds.append("print (long)syscall(%s)" %
                ", ".join("(long)%d" % a for a in [nr] + list(args)))
    cmds.append("print (int)*((int *(*)(void))__errno_location)()")
    cmds.append("detach")
    argv = ["gdb", "-p", str(pid), "-batch", "-nx"]
    for c in cmds:
        argv += ["-ex", c]
    p = h.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=h.T(30))
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        raise h.TestFailure("gdb on %d did not finish within 30s:\n%s" %
                            (pid, out.decode("utf-8", "replace")[-2000:]))
    out = out.decode("utf-8", "replace")
    res = {"ret": None, "errno": None, "signal": None, "exec": False,
           "out": out}
    if re.search(r"ptrace: Operation not permitted|Could not attach|"
                 r"Unable to attach|No such process", out):
        raise h.TestFailure("gdb cannot attach to %d (the test must run "
                            "the action inside the child):\n%s" % (pid, out))
    call = out.split("ECHOD-SBX-CALL", 1)
    h.check(len(call) == 2, "gdb did not reach the call on %d:\n%s" %
            (pid, out))
    pre, post = call
    h.check(not re.search(r"Cannot access memory|No symbol", pre),
            "gdb could not prepare the call on %d:\n%s" % (pid, out))
    m = re.search(r"^\$1 = (-?\d+)", post, re.M)
    if m:
        res["ret"] = int(m.group(1))
    m = re.search(r"^\$2 = (-?\d+)", post, re.M)
    if m:
        res["errno"] = int(m.group(1))
    m = re.search(r"Program (?:terminated|received) (?:with )?signal (SIG\w+)",
                  post)
    if m:
        res["signal"] = m.group(1)
    if re.search(r"is executing new program", post):
        res["exec"] = True
    if res["ret"] is None and res["signal"] is None and not res["exec"]:
        h.check(re.search(r"exited|no longer exists", post),
                "cannot read the outcome of the call from gdb:\n%s" % out)
    return res


def c_str(s):
    return s.encode() + b"\0"


def sockaddr_in(port):
    return struct.pack("<HH4s8x", AF_INET, socket.htons(port),
                       socket.inet_aton("127.0.0.1"))


class Fixture:
    """The echod under attack, a sibling connection, and helpers that make
    a fresh child per action."""

    def __init__(self):
        self.e = None
        self.sib = None
        self.sib_pid = None
        self.kills = 0  # SIGSYS kills this echod should have counted
        self.start()

    def start(self):
        # Its own session: an action on the process group (kill(0, ...))
        # reaches echod's processes, never the test.
        self.e = h.Echod(["-p", "0", "-b", "127.0.0.1"],
                         preexec_fn=os.setsid)
        self.kills = 0
        self.new_sibling()

    def new_sibling(self):
        if self.sib:
            self.sib.close()
            # A sibling left stopped or wedged by an action that went
            # through would hold up echod's shutdown.
            if alive(self.sib_pid):
                os.kill(self.sib_pid, signal.SIGKILL)
        self.sib, self.sib_pid = open_served(self.e, b"sibling\n")

    def restart(self):
        if self.sib:
            self.sib.close()
            self.sib = None
        kids = descendants(self.e.pid)
        if self.e.alive():
            self.e.kill()
        self.e.stopped = True
        for k in kids + [p for p, _ in h.stray_children()]:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.start()

    def close(self):
        if self.sib:
            self.sib.close()


def run_action(fx, name, build, check=None, harmless_success=None):
    """One forbidden action in a fresh child. build(ctx) returns (nr, args,
    data); ctx has the child's pid, fds, scratch address... check(ctx, res)
    returns a list of effects observed (empty: none). harmless_success, if
    given, says why a call that succeeds without any effect on another
    process is no escape. Returns (verdict, effects, ok)."""
    e = fx.e
    s, kid = open_served(e, b"victim %s\n" % name.encode())
    try:
        ctx = {"kid": kid, "parent": e.pid, "port": e.port,
               "cport": h.cport(s), "sibling": fx.sib_pid,
               "scratch": stack_scratch(kid)}
        ctx["client_fd"] = client_fd(kid, e.port, ctx["cport"])
        ctx["status"] = h.proc_status(kid)
        ctx["desc_before"] = set(descendants(e.pid))
        ctx["mark"] = e.mark()
        nr, args, data = build(ctx)
        res = gdb_syscall(kid, nr, args, data, ctx["scratch"])
        time.sleep(0.1)
        killed = None
        deadline = time.monotonic() + h.T(3)
        while alive(kid) and time.monotonic() < deadline and (
                res["signal"] or res["exec"] or res["ret"] is None):
            time.sleep(0.02)
        kid_alive = alive(kid)
        if not kid_alive:
            m = e.find(r"child %d .*killed by (SIG\w+)" % kid, ctx["mark"])
            if not m:
                try:
                    m = [e.wait_log(r"child %d .*killed by (SIG\w+)" % kid,
                                    h.T(3), ctx["mark"])]
                except h.TestFailure:
                    m = []
            killed = m[0].group(1) if m else None
        effects = []
        if check:
            effects += check(ctx, res)
        # Nothing new below echod but what the test opened.
        new = [p for p in set(descendants(e.pid)) - ctx["desc_before"]
               if alive(p)]
        if new:
            effects.append("new processes below echod: %r" % new)
        if kid_alive and res["ret"] is not None and res["ret"] < 0 and \
                not still_echoes(s):
            effects.append("the child survived but no longer echoes")
        if res["exec"]:
            effects.append("the child executed a new program")
        if res["ret"] is not None and res["ret"] >= 0 and harmless_success:
            verdict = "returned %d (no escape if it %s)" % (
                res["ret"], harmless_success)
            ok = True
        elif res["ret"] is not None and res["ret"] >= 0:
            verdict = "ALLOWED: returned %d" % res["ret"]
            ok = False
        elif res["ret"] == -1:
            en = res["errno"]
            verdict = "returned -1 errno %s (%s)" % (
                errno.errorcode.get(en, en) if en is not None else "?",
                os.strerror(en) if en is not None else "?")
            ok = kid_alive
            if not kid_alive:
                verdict += ", yet the child died"
        elif not kid_alive and killed == "SIGSYS":
            verdict = "killed by SIGSYS (logged: sandbox violation)"
            fx.kills += 1
            ok = True
        elif not kid_alive:
            verdict = "child died (gdb: %s; echod logged: %s)" % (
                res["signal"], killed)
            ok = False
        else:
            verdict = "unclear outcome; gdb said:\n%s" % res["out"]
            ok = False
        if effects:
            ok = False
        return verdict, effects, ok
    finally:
        s.close()


def effects_common(fx):
    """After every action: the parent alive and serving, the sibling alive
    and echoing."""
    out = []
    e = fx.e
    if not e.alive():
        out.append("echod's parent died")
        return out
    try:
        h.roundtrip(e.port, b"parent still serves\n")
    except Exception as ex:
        out.append("the parent no longer serves: %s" % ex)
    if not alive(fx.sib_pid):
        out.append("the sibling child %d is gone" % fx.sib_pid)
    elif not still_echoes(fx.sib, b"sibling again\n"):
        out.append("the sibling child %d no longer echoes" % fx.sib_pid)
    else:
        st = h.proc_status(fx.sib_pid)
        if st and st.get("TracerPid", "0") != "0":
            out.append("the sibling is traced by %s" % st.get("TracerPid"))
    return out


def case_child_forbidden_actions():
    need("gdb")
    tag = "echod-sbx-%d" % os.getpid()
    exec_marker = "/tmp/%s-exec" % tag
    new_file = "/tmp/%s-new" % tag
    new_file2 = "/tmp/%s-new2" % tag
    gcov_file = "/tmp/%s-gcov" % tag
    coverage = coverage_build()
    landlock = have_landlock()
    h.log("%s build of echod, %s" % ("coverage" if coverage else "release",
                                     "Landlock" if landlock
                                     else "no Landlock"))
    for p in (exec_marker, new_file, new_file2, gcov_file):
        h.check(not os.path.exists(p), "%s exists before the test" % p)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.setblocking(False)
    target_port = lsock.getsockname()[1]
    bind_port = h.free_port()

    def no_file(path):
        def chk(ctx, res):
            if os.path.exists(path):
                os.unlink(path)
                return ["%s was created" % path]
            return []
        return chk

    def nothing_connected(ctx, res):
        time.sleep(0.1)
        try:
            c, a = lsock.accept()
        except BlockingIOError:
            return []
        c.close()
        return ["a connection from %s:%d reached the test's listener" % a]

    def port_free(ctx, res):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", bind_port))
            return []
        except OSError as ex:
            return ["127.0.0.1:%d is taken after the bind: %s" %
                    (bind_port, ex)]
        finally:
            t.close()

    def own_descendants(ctx, res):
        new = descendants(ctx["kid"]) if alive(ctx["kid"]) else []
        return ["the child has descendants %r" % new] if new else []

    def parent_untouched(ctx, res):
        out = []
        if not fx.e.alive():
            return ["the parent is dead"]
        if fx.e.find(r"echod\[%d\]: shutdown" % ctx["parent"], ctx["mark"]):
            out.append("the parent started its shutdown")
        return out

    def uid_unchanged(ctx, res):
        st = h.proc_status(ctx["kid"])
        if st and st.get("Uid") != ctx["status"].get("Uid"):
            return ["the child's Uid changed: %r -> %r" %
                    (ctx["status"].get("Uid"), st.get("Uid"))]
        return []

    def exec_build(ctx):
        s0 = ctx["scratch"]
        sh, c, cmd = (c_str("/bin/sh"), c_str("-c"),
                      c_str("echo escaped > %s" % exec_marker))
        data = sh.ljust(16, b"\0") + c.ljust(16, b"\0") + cmd
        data = data.ljust(256, b"\0")
        argv = struct.pack("<QQQQ", s0, s0 + 16, s0 + 32, 0)
        return NR["execve"], [s0, s0 + 256, 0], data + argv

    def exec_check(ctx, res):
        time.sleep(0.3)
        return no_file(exec_marker)(ctx, res)

    def path_build(nr, path, *rest):
        def b(ctx):
            if nr == NR["openat"]:
                return nr, [AT_FDCWD, ctx["scratch"]] + list(rest), \
                    c_str(path)
            return nr, [ctx["scratch"]] + list(rest), c_str(path)
        return b

    def connect_build(ctx):
        return NR["connect"], [ctx["client_fd"], ctx["scratch"], 16], \
            sockaddr_in(target_port)

    def bind_build(ctx):
        return NR["bind"], [ctx["client_fd"], ctx["scratch"], 16], \
            sockaddr_in(bind_port)

    def clone3_build(ctx):
        # struct clone_args (CLONE_ARGS_SIZE_VER0 = 64): flags, pidfd,
        # child_tid, parent_tid, exit_signal, stack, stack_size, tls
        args = struct.pack("<8Q", 0, 0, 0, 0, SIGCHLD, 0, 0, 0)
        return NR["clone3"], [ctx["scratch"], 64], args

    lfd = {}

    def accept_build(ctx):
        n, ino = listener_fd(fx.e)
        lfd["n"] = n
        link = fds_of(ctx["kid"]).get(n)
        lfd["child"] = link
        h.log("  parent's listener is fd %d (socket inode %d); the child's "
              "fd %d is %s" % (n, ino, n, link))
        lfd["leak"] = link is not None and sock_inode(link) == ino
        return NR["accept4"], [n, 0, 0, 0], b""

    def accept_check(ctx, res):
        if lfd.get("leak"):
            return ["the child holds the listener as fd %d" % lfd["n"]]
        return []

    ctrl = {}

    def mprotect_build(ctx):
        m = control_mapping(ctx["kid"])
        h.check(m is not None, "no echod-control mapping in child %d" %
                ctx["kid"])
        ctrl["map"] = m
        h.log("  control mapping %x-%x %s %s" % m)
        return NR["mprotect"], [m[0], m[1] - m[0], PROT_READ | PROT_WRITE], \
            b""

    def mprotect_check(ctx, res):
        if not alive(ctx["kid"]):
            return []
        m = control_mapping(ctx["kid"])
        if m and "w" in m[2]:
            return ["the control mapping is now %s" % m[2]]
        return []

    pvw = {}

    def pvw_build(ctx):
        # One byte into the lowest page of the parent's stack (unused):
        # a marker the test can look for through /proc/<parent>/mem.
        target = stack_scratch(ctx["parent"]) + 64
        with open("/proc/%d/mem" % ctx["parent"], "rb", 0) as f:
            f.seek(target)
            before = f.read(1)
        marker = b"\xa5" if before != b"\xa5" else b"\x5a"
        pvw.update(target=target, marker=marker)
        s0 = ctx["scratch"]
        data = marker.ljust(64, b"\0")
        data += struct.pack("<QQ", s0, 1)            # local iovec at +64
        data += struct.pack("<QQ", target, 1)        # remote iovec at +80
        return NR["process_vm_writev"], [ctx["parent"], s0 + 64, 1,
                                         s0 + 80, 1, 0], data

    def pvw_check(ctx, res):
        if not fx.e.alive():
            return []
        with open("/proc/%d/mem" % ctx["parent"], "rb", 0) as f:
            f.seek(pvw["target"])
            now = f.read(1)
        return ["the parent's memory was written"] if now == pvw["marker"] \
            else []

    # gcov's open: the one shape of open a coverage build's filter lets
    # through; what each build must do with it, exactly.
    gcov_open = ("openat(AT_FDCWD, \"%s\", O_RDWR|O_CREAT, 0666) (gcov's)"
                 % gcov_file)
    expect = {gcov_open: "killed by SIGSYS"}
    if coverage:
        h.check(landlock, "a coverage build lets gcov's open through its "
                "filter: only Landlock keeps it beneath the build "
                "directory, and this kernel has no Landlock")
        expect[gcov_open] = "returned -1 errno EACCES"

    actions = [
        ("execve(\"/bin/sh\", -c, echo > marker)", exec_build, exec_check),
        ("open(\"/etc/passwd\", O_RDONLY)",
         path_build(NR["open"], "/etc/passwd", O_RDONLY), None),
        ("openat(AT_FDCWD, \"/etc/passwd\", O_RDONLY)",
         path_build(NR["openat"], "/etc/passwd", O_RDONLY), None),
        ("openat(AT_FDCWD, \"%s\", O_WRONLY|O_CREAT|O_EXCL)" % new_file,
         path_build(NR["openat"], new_file, O_WRONLY | O_CREAT | O_EXCL,
                    0o666), no_file(new_file)),
        ("open(\"%s\", O_WRONLY|O_CREAT|O_EXCL)" % new_file2,
         path_build(NR["open"], new_file2, O_WRONLY | O_CREAT | O_EXCL,
                    0o666), no_file(new_file2)),
        (gcov_open, path_build(NR["openat"], gcov_file, O_RDWR | O_CREAT,
                               0o666), no_file(gcov_file)),
        ("socket(AF_INET, SOCK_STREAM, 0)",
         lambda c: (NR["socket"], [AF_INET, SOCK_STREAM, 0], b""), None),
        ("socket(AF_UNIX, SOCK_DGRAM, 0)",
         lambda c: (NR["socket"], [AF_UNIX, SOCK_DGRAM, 0], b""), None),
        ("connect(client fd, 127.0.0.1:%d)" % target_port, connect_build,
         nothing_connected),
        ("bind(client fd, 127.0.0.1:%d)" % bind_port, bind_build, port_free),
        ("fork()", lambda c: (NR["fork"], [], b""), own_descendants),
        ("clone(SIGCHLD, 0)", lambda c: (NR["clone"], [SIGCHLD, 0, 0, 0, 0],
                                         b""), own_descendants),
        ("clone3({exit_signal=SIGCHLD})", clone3_build, own_descendants),
        ("kill(parent, SIGTERM)",
         lambda c: (NR["kill"], [c["parent"], signal.SIGTERM], b""),
         parent_untouched),
        ("kill(parent, SIGKILL)",
         lambda c: (NR["kill"], [c["parent"], signal.SIGKILL], b""),
         parent_untouched),
        # The child is a member of the group: the call succeeds when it
        # reaches the child alone (Landlock's signal scoping stops it at
        # every other process), which the checks verify.
        # SIGQUIT, which drains echod as SIGTERM does: the child takes
        # SIGTERM itself (its handler ends blocking calls, conn.c), and a
        # SIGTERM to itself would interrupt the call gdb injects; SIGQUIT
        # stays blocked in the child, as SIGTERM was before.
        ("kill(0, SIGQUIT) (echod's process group)",
         lambda c: (NR["kill"], [0, signal.SIGQUIT], b""), parent_untouched,
         "reached no other process: parent and sibling unaffected"),
        ("kill(sibling, SIGKILL)",
         lambda c: (NR["kill"], [c["sibling"], signal.SIGKILL], b""), None),
        ("accept4(listener's fd number, NULL, NULL, 0)", accept_build,
         accept_check),
        ("ptrace(PTRACE_ATTACH, sibling)",
         lambda c: (NR["ptrace"], [PTRACE_ATTACH, c["sibling"], 0, 0], b""),
         None),
        ("mprotect(echod-control, PROT_READ|PROT_WRITE)", mprotect_build,
         mprotect_check),
        ("process_vm_writev(parent, 1 byte)", pvw_build, pvw_check),
        ("setuid(0)", lambda c: (NR["setuid"], [0], b""), uid_unchanged),
        ("setresuid(0, 0, 0)", lambda c: (NR["setresuid"], [0, 0, 0], b""),
         uid_unchanged),
    ]
    only = os.environ.get("ECHOD_SBX_ACTIONS")
    if only:
        actions = [a for a in actions if any(w in a[0]
                                             for w in only.split("|"))]

    fx = Fixture()
    report = []
    try:
        h.log("test runs as %s; echod pid %d, sibling child %d" %
              ("root" if IS_ROOT else "uid %d" % os.getuid(), fx.e.pid,
               fx.sib_pid))
        for name, build, chk, *harmless in actions:
            h.log("action: %s" % name)
            try:
                verdict, effects, ok = run_action(fx, name, build, chk,
                                                  *harmless)
            except h.TestFailure as ex:
                verdict, effects, ok = "could not run: %s" % ex, [], False
            effects += effects_common(fx)
            if effects:
                ok = False
            if name in expect and not verdict.startswith(expect[name]):
                verdict += " (expected in this build: %s)" % expect[name]
                ok = False
            h.log("  -> %s%s" % (verdict, "".join("\n     EFFECT: " + x
                                                   for x in effects)))
            report.append((name, verdict, effects, ok))
            if not fx.e.alive() or any("parent" in x for x in effects):
                h.log("  echod is dead or no longer serves: starting a new "
                      "one for the next actions")
                fx.restart()
            elif not alive(fx.sib_pid) or effects:
                fx.new_sibling()
        st = fx.e.stats()
        kills = h.stat_int(st, "sandbox_kills", "sandbox")
        h.log("sandbox_kills=%d, SIGSYS kills seen by the test: %d" %
              (kills, fx.kills))
        h.log("summary:")
        for name, verdict, effects, ok in report:
            h.log("  %-4s %-55s %s%s" % ("ok" if ok else "FAIL", name,
                                         verdict.splitlines()[0],
                                         "; " + "; ".join(effects)
                                         if effects else ""))
        bad = [r for r in report if not r[3]]
        h.check(not bad, "%d of %d actions were not blocked cleanly: %s" %
                (len(bad), len(report), ", ".join(r[0] for r in bad)))
        h.eq(kills, fx.kills, "sandbox_kills counter")
    finally:
        lsock.close()
        fx.close()
        for p in (exec_marker, new_file, new_file2, gcov_file):
            if os.path.exists(p):
                os.unlink(p)
        if fx.e.alive():
            fx.e.stop()


# --- 4. control_page_readonly ------------------------------------------------

def case_control_page_readonly():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    problems = []
    try:
        s, kid = open_served(e, b"control\n")
        try:
            maps = maps_of(kid)
            shared = [m for m in maps if m[2].endswith("s")]
            for m in shared:
                h.log("child %d shared mapping %x-%x %s %s" % ((kid,) + m))
            rws = [m for m in shared if m[2].startswith("rw")]
            if rws:
                problems.append("child %d has writable shared mappings: %s"
                                % (kid, ["%x-%x %s %s" % m for m in rws]))
            ctrl = [m for m in maps if "echod-control" in m[3]]
            if len(ctrl) != 1:
                problems.append("child %d: %d mappings named echod-control, "
                                "expected 1" % (kid, len(ctrl)))
            for m in ctrl:
                if m[3] != "/memfd:echod-control (deleted)":
                    problems.append("control mapping named %r" % m[3])
                if m[2] != "r--s":
                    problems.append("control mapping is %s, expected r--s"
                                    % m[2])
            if not IS_ROOT:
                h.log("NOT ROOT (uid %d): only the maps were checked; the "
                      "write through /proc/%d/mem needs root and was not "
                      "tried" % (os.getuid(), kid))
            else:
                # Write back the byte that is there (the last of the
                # mapping, past anything in use): an unblocked write must
                # be caught without changing anything.
                fd = os.open("/proc/%d/mem" % kid, os.O_RDWR)
                try:
                    for m in ctrl + rws:
                        addr = m[1] - 1
                        old = os.pread(fd, 1, addr)
                        try:
                            os.lseek(fd, addr, os.SEEK_SET)
                            n = os.write(fd, old)
                        except OSError as ex:
                            h.log("write to %x (%s %s) through /proc/%d/mem:"
                                  " refused, %s" % (addr, m[2], m[3], kid,
                                                    ex))
                            continue
                        h.log("write to %x (%s %s) through /proc/%d/mem: "
                              "SUCCEEDED (%d byte)" % (addr, m[2], m[3],
                                                       kid, n))
                        problems.append("root wrote %d byte into the child's"
                                        " %s mapping %s through "
                                        "/proc/%d/mem" % (n, m[2], m[3],
                                                          kid))
                finally:
                    os.close(fd)
            h.check(still_echoes(s), "child stopped echoing")
        finally:
            s.close()
        for p in problems:
            h.log("PROBLEM: " + p)
        h.check(not problems, "%d problems:\n  %s" %
                (len(problems), "\n  ".join(problems)))
    finally:
        e.stop()


if __name__ == "__main__":
    h.main(globals())
