#!/usr/bin/env python3
"""Per-thread figures for bench/api_threads.sh. Not a test; prints, asserts nothing.

  sched_states.py snap FILE                 every thread on the host: pid, tid, comm, ns on CPU
                                            (/proc/*/task/*/schedstat), and /proc/stat's cpu line
  sched_states.py cpu A B CREATES SECONDS   what each command and thread used between two snaps,
                                            per create and in cores, and the machine's split
  sched_states.py states TRACE PID...       from `perf script -F comm,pid,tid,cpu,time,event,trace,ip,sym`
                                            of `perf record -e sched:sched_switch -e sched:sched_wakeup
                                            -a -g`, over the window in which bench_api_client's threads
                                            ran: each thread of the PIDs running, runnable (woken,
                                            waiting for a CPU), in D and in S, and the kernel stacks
                                            (then the first user frame) it slept in, by time
"""
import collections
import os
import re
import sys


def snap(path):
    with open(path, "w") as out:
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                tasks = os.listdir("/proc/%s/task" % p)
            except OSError:
                continue
            for t in tasks:
                try:
                    s = open("/proc/%s/task/%s/stat" % (p, t)).read()
                    ns = int(open("/proc/%s/task/%s/schedstat" % (p, t)).read().split()[0])
                except OSError:
                    continue
                comm = s[s.index("(") + 1:s.rindex(")")].replace(" ", "_")
                out.write("%s %s %s %d\n" % (p, t, comm, ns))
        out.write("CPU " + open("/proc/stat").readline())


def load(path):
    d, cpu = {}, None
    for line in open(path):
        if line.startswith("CPU "):
            cpu = [int(x) for x in line.split()[2:]]
            continue
        p, t, c, v = line.split()
        d[(p, t)] = (c, int(v))
    return d, cpu


def cpu(a_path, b_path, n, wall):
    a, ca = load(a_path)
    b, cb = load(b_path)
    hz = os.sysconf("SC_CLK_TCK")
    names = "user nice system idle iowait irq softirq steal".split()
    dc = [y - x for x, y in zip(ca, cb)]
    print("wall %.2fs  machine: " % wall +
          " ".join("%s=%.2f" % (nm, dc[i] / hz / wall) for i, nm in enumerate(names)) + " cores")
    rows = []
    for k, (c, v) in b.items():
        d = v - a.get(k, (c, 0))[1]
        if d > 0:
            rows.append((d, k[0], k[1], c))
    rows.sort(reverse=True)
    by = collections.Counter()
    for d, p, t, c in rows:
        by[c] += d
    print("by command (threads alive at the end; ms per create, cores):")
    for c, d in by.most_common(15):
        print("  %-24s %7.2f ms  %5.2f cores" % (c, d / 1e6 / n, d / 1e9 / wall))
    print("top threads:")
    for d, p, t, c in rows[:15]:
        print("  %7s %7s %-24s %7.2f ms  %5.2f cores" % (p, t, c, d / 1e6 / n, d / 1e9 / wall))


EV = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
SKIP = {"__schedule", "schedule", "schedule_hrtimeout_range_clock", "schedule_hrtimeout_range",
        "schedule_timeout", "io_schedule", "schedule_preempt_disabled", "[unknown]"}


def states(trace, pids):
    lines = open(trace, errors="replace").read().split("\n")
    recs, i = [], 0
    while i < len(lines):
        m = EV.match(lines[i])
        i += 1
        if not m:
            continue
        c, pid, tid, _, ts, ev, rest = m.groups()
        st = []
        while i < len(lines) and lines[i].strip() and not EV.match(lines[i]):
            parts = lines[i].split()
            if len(parts) > 1:
                st.append(parts[1].split("+")[0])
            i += 1
        recs.append((float(ts), c.strip(), pid, tid, ev, rest, st))
    cl = [r[0] for r in recs if r[1].startswith("bench_api_clien") or "next_comm=bench_api_clien" in r[5]]
    w0, w1 = min(cl), max(cl)
    state, tgid, comm = {}, {}, {}
    acc = collections.defaultdict(collections.Counter)
    stk = collections.defaultdict(collections.Counter)

    def close(t, ts):
        x = state.get(t)
        if not x:
            return
        lo, hi = max(x[1], w0), min(ts, w1)
        if hi > lo:
            acc[t][x[0]] += hi - lo
            if x[0] in ("D", "S"):
                stk[t][(x[0], x[2])] += hi - lo

    for ts, c, pid, tid, ev, rest, st in recs:
        comm[tid], tgid[tid] = c, pid
        if ev == "sched:sched_switch":
            m = re.search(r'prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)', rest)
            if not m:
                continue
            pp, ps, nc, np_ = m.groups()
            close(pp, ts)
            if ps.startswith("R"):
                state[pp] = ("Runnable", ts, None)
            else:
                fr = [f for f in st if f not in SKIP]
                if "entry_SYSCALL_64_after_hwframe" in fr:
                    k = fr.index("entry_SYSCALL_64_after_hwframe")
                    fr = fr[:min(k, 3)] + ["|"] + fr[k + 1:k + 3]
                state[pp] = ("D" if "D" in ps else "S", ts, " <- ".join(fr[:8]))
            close(np_, ts)
            state[np_] = ("Running", ts, None)
            comm.setdefault(np_, nc)
        elif ev == "sched:sched_wakeup":
            m = re.search(r' pid=(\d+)', rest)
            if m and m.group(1) in state and state[m.group(1)][0] in ("D", "S"):
                close(m.group(1), ts)
                state[m.group(1)] = ("Runnable", ts, None)
    for t in list(state):
        close(t, w1)
    wall = w1 - w0
    print("window %.3f s" % wall)
    order = sorted(acc, key=lambda t: -(acc[t]["Running"] + acc[t]["D"] + acc[t]["Runnable"]))
    for t in order:
        if pids and tgid.get(t) not in pids:
            continue
        a = acc[t]
        if a["Running"] < 0.005 * wall:
            continue
        print("%-7s %-7s %-16s run %5.1f%%  runnable %5.1f%%  D %5.1f%%  S %5.1f%%" % (
            tgid.get(t), t, comm.get(t), 100 * a["Running"] / wall, 100 * a["Runnable"] / wall,
            100 * a["D"] / wall, 100 * a["S"] / wall))
        for (k, s), v in stk[t].most_common(5):
            if v > 0.004 * wall:
                print("      %s %5.1f%%  %s" % (k, 100 * v / wall, s[:200]))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "snap":
        snap(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "cpu":
        cpu(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "states":
        states(sys.argv[2], set(sys.argv[3:]))
    else:
        sys.exit(__doc__)
