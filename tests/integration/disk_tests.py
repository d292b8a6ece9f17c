"""paystream integration tests of the spool on a failing disk (docs/BILLING.md,
"The spool on disk": a disk that refuses writes for a while).

The spool folder is a small tmpfs mounted for the test (run executes the
suite in a mount namespace of its own, so a mount left behind by a crashed
run dies with it); a filler file takes all its free space, so the plugin's
writes fail with ENOSPC until the test deletes it.

Each test has its own Janus with the HTTP event handler (events_tests.py's
decorator and helpers) billing to billing_tests.py's reference service.
Registered by suite.py (TESTS is appended to the suite's list).
"""

import asyncio
import errno
import os
import subprocess

import billing_tests as B
import events_tests as E
import harness as H
from harness import check, expect_error, short

TESTS = []

TMPFS_SIZE = "1m"


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, f"cannot mount a tmpfs on {path} (the suite runs as root or in a "
          f"user namespace, in its own mount namespace: see run): {r.stderr.strip()}")


def unmount(path):
    # lazy: Janus may still hold the spool open (the runner stops it after the test)
    subprocess.run(["umount", "-l", path], capture_output=True, timeout=10)


def fill(path):
    """Write `path` until the filesystem has no room left; returns its size."""
    chunk = b"\0" * 4096
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                n = os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            if n == 0:
                break
            size += n
    finally:
        os.close(fd)
    return size


@E.test(timeout=180, registry=TESTS)
async def test_spool_disk_full(ctx):
    """The spool's disk fills up (ENOSPC) under a paying viewer: new priced
    sessions are refused and a spool_error event says io_error, media and
    ticks go on; once space is freed the next commit writes what was kept in
    memory, a spool_recovered event and log line say so, priced sessions
    are accepted again, and every record is journaled and billed once."""
    sink = ctx.sink
    svc = await B.service(ctx)
    spool = os.path.join(E.janus_workdir(ctx), "spool")
    filler = os.path.join(spool, "filler")
    mount_tmpfs(spool, TMPFS_SIZE)
    try:
        await disk_full_scenario(ctx, sink, svc, spool, filler)
    finally:
        if os.path.exists(filler):
            os.unlink(filler)
        unmount(spool)


async def disk_full_scenario(ctx, sink, svc, spool, filler):
    srv = await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 1)
    A = await B.funded_viewer(ctx, svc, room, "disk", ticks=2)
    await B.wait_first_billed(svc, A, "no tick reached the billing service before the disk filled up")
    st = await B.plugin_billing_stats(ctx)
    check(st.get("accepting_sessions") is True and st.get("spool_write_failing") is False
          and st.get("spool_broken") is False, f"stats before the disk filled up: {short(st)}")
    log_off = srv.log_size()[0]

    # the disk fills up: the journal's last page has room for a few more
    # seconds of records, then every commit fails with ENOSPC
    filled = await asyncio.to_thread(fill, filler)
    check(filled > 0, "the filler file got no space at all")
    st = await B.poll(lambda: B.plugin_billing_stats(ctx),
                      lambda b: b["spool_write_failing"] is True, 40,
                      "stats: spool_write_failing never became true on a full disk")
    check(st["accepting_sessions"] is False and st["spool_broken"] is False,
          f"stats while writes fail: {short(st)}")
    d = (await sink.wait("spool_error", None, 10))[0]
    check(d.get("error") == "io_error" and isinstance(d.get("spool_bytes"), int) and d["spool_bytes"] > 0,
          f"spool_error: {short(d)}")
    check(srv.log_grep("spool: cannot write the journal", log_off),
          "no 'spool: cannot write the journal' line in the Janus log")

    # media and metering go on; what is not on disk is not sent
    t0 = B.last_tick(A).data["seconds"]
    await B.wait_tick(A, t0 + 1, 10)
    billed_before = (await svc.session(A.session))["billed_seconds"]
    n0 = A.nframes
    await B.wait_tick(A, t0 + 4, 10)
    await A.wait_frames(30, 10)
    check(A.nframes > n0, "frames stopped while the spool could not write")
    billed_during = (await svc.session(A.session))["billed_seconds"]
    check(billed_during == billed_before,
          f"records reached the billing service while the spool could not write them: "
          f"billed {billed_before} -> {billed_during}")
    # a new priced session is refused
    late = await ctx.viewer("late")
    sub2 = H.rand_id("disk-late")
    await svc.fund(sub2, 100000)
    expect_error(await late.watch(room, token=B.token(room, sub2)), 459,
                 "priced watch while the spool cannot write")
    check(B.viewer_entry(await ctx.participants(room), sub2) is None, "the refused viewer joined")
    st = await B.plugin_billing_stats(ctx)
    check(st["accepting_sessions"] is False and st["spool_write_failing"] is True
          and st["spool_broken"] is False, f"stats later while writes fail: {short(st)}")
    errors = sink.named("spool_error")
    check(len(errors) == 1, f"spool_error raised more than once in one episode: {short(errors)}")
    check(not sink.named("spool_recovered"), "spool_recovered while the disk is still full")

    # space is freed: the next commit writes what was kept
    os.unlink(filler)
    st = await B.poll(lambda: B.plugin_billing_stats(ctx),
                      lambda b: b["accepting_sessions"] is True and b["spool_write_failing"] is False, 15,
                      "accepting_sessions stayed false after space was freed")
    check(st["spool_broken"] is False, f"stats after recovery: {short(st)}")
    r = (await sink.wait("spool_recovered", None, 10))[0]
    check(r.get("error") == "io_error" and isinstance(r.get("failures"), int) and r["failures"] >= 3,
          f"spool_recovered: {short(r)} (writes failed for more than 3 s)")
    check(srv.log_grep("spool: written again after", log_off),
          "no 'spool: written again after' line in the Janus log")
    late2 = await ctx.viewer("late2")
    ev = await late2.join_live(room, token=B.token(room, sub2))
    check(ev.data.get("session"), f"priced watch after recovery: {short(ev.data)}")
    late2.session, late2.sub = ev.data["session"], sub2
    await late2.wait_frames(10, 15)
    await B.wait_tick(late2, 1, 10)

    for v in (A, late2):
        told = B.last_tick(v).data["seconds"]
        await B.leave(v)
        s = await B.ended_session(svc, v.session, 20)
        check(s["reported_seconds"] >= told, f"{v.label}: session_end {short(s)} below the last tick {told}")
        check((s["billed_seconds"], s["billed_amount"]) == (s["reported_seconds"], s["reported_amount"])
              and s["mismatch"] == 0, f"{v.label}: usage lost or doubled around the full disk: {short(s)}")
        usage = await B.usage_entries(svc, v.sub)
        B.check_refs_unique(usage, v.sub)
        check(-sum(e["delta"] for e in usage) == s["reported_amount"],
              f"{v.label}: ledger sum {-sum(e['delta'] for e in usage)} != {s['reported_amount']}")
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["queue_depth"] == 0, 20,
                 "queue_depth did not go back to 0")
    check(len(sink.named("spool_error")) == 1 and len(sink.named("spool_recovered")) == 1,
          f"one episode, one spool_error and one spool_recovered: "
          f"{short(sink.named('spool_error') + sink.named('spool_recovered'))}")
    A_seconds = (await svc.session(A.session))["reported_seconds"]

    # the journal: no torn line left by the failed writes, every record once
    rc = await asyncio.to_thread(srv.stop)
    check(rc == 0, f"janus exit code {rc} on SIGTERM")
    with open(os.path.join(spool, E.SPOOL_FILE), "rb") as f:
        data = f.read()
    entries, good = E.journal_entries(data)
    check(good == len(data), f"the journal is unreadable after byte {good} of {len(data)}: "
          f"{data[good:good + 200]!r}")
    recs = [e["rec"] for e in entries if e["e"] == "rec"]
    ids = [r.get("record_id") for r in recs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    check(not dup, f"records journaled more than once: {dup}")
    a_ticks = sum(r["seconds"] for r in recs if r.get("type") == "tick" and r.get("session") == A.session)
    check(a_ticks == A_seconds, f"{A.label}: ticks in the journal sum to {a_ticks}s, billed {A_seconds}s")
    check(not E.pending_records(entries), f"records left unacknowledged: {short(E.pending_records(entries))}")


def journal_line(body):
    """One journal line (docs/BILLING.md, "The spool on disk") for body (bytes)."""
    return b"%08x " % E.crc32c(body) + body + b"\n"


def compact_json(obj):
    import json
    return json.dumps(obj, separators=(",", ":")).encode()


@E.test(timeout=120, registry=TESTS)
async def test_spool_unfit_ids(ctx):
    """A journal written by hand whose unacknowledged batch id and tip id
    hold a quote and a carriage return (no id the plugin makes, nothing a
    client can send): the batch's records are delivered under a fresh
    batch id (a UUID) and billed once, the tip is dropped as failed and
    never sent (so never charged), both logged; Janus keeps serving."""
    svc = await B.service(ctx)
    srv = await E.events_janus(ctx, svc)
    rc = await asyncio.to_thread(srv.stop)
    check(rc == 0, f"janus exit code {rc} on SIGTERM")
    await ctx.cleanup()
    viewer, room = H.rand_id("unfit"), H.rand_id("room")
    await svc.fund(viewer, 1000)
    sid = H.rand_id("sess")
    ids = {"session": sid, "room": room, "viewer": viewer}
    start = {"type": "session_start", "record_id": f"{sid}:start", **ids, "at": 1000,
             "price_per_second": 3, "currency": "CRD"}
    ticks = [{"type": "tick", "record_id": f"{sid}:{n}", **ids, "start": 1000 + n * 1000, "seconds": s,
              "amount": 3 * s, "currency": "CRD"} for n, s in ((1, 2), (2, 1))]
    bad_batch, bad_tip = b'bad"batch\rid', b'tip"\rx'
    tip = {"tip_id": bad_tip.decode(), "room": room, "viewer": viewer, "session": sid, "amount": 50,
           "currency": "CRD", "message": "hand written"}
    lines = [b"H 2 1"] + [b"R %d " % (i + 1) + compact_json(r) for i, r in enumerate([start] + ticks)]
    lines += [b"B 1 3 " + bad_batch, b"T %d " % len(bad_tip) + bad_tip + b" " + compact_json(tip)]
    path = os.path.join(srv.workdir, "spool", E.SPOOL_FILE)
    with open(path, "wb") as f:
        f.write(b"".join(journal_line(line) for line in lines))

    log_off = srv.log_size()[0]
    await asyncio.to_thread(srv.start)
    check(srv.alive(), srv.death_reason() or "janus died")
    s = await B.poll(lambda: svc.session(sid), lambda s: s is not None and s["billed_seconds"] == 3, 20,
                     "the hand-written batch's ticks were not billed")
    check(s["billed_amount"] == 9, f"session billed {short(s)}, want 9")
    usage = await B.usage_entries(svc, viewer)
    B.check_refs_unique(usage, viewer)
    check({e["ref"] for e in usage} == {f"{sid}:1", f"{sid}:2"}, f"usage refs {short(usage)}")
    resent = srv.log_grep("has an id unfit for the billing call: re-sending its records as batch", log_off)
    check(len(resent) == 1, f"log lines about the batch: {resent}")
    fresh = resent[0].rsplit(" ", 1)[-1].strip()
    check(len(fresh) == 36 and fresh.count("-") == 4, f"the fresh batch id {fresh!r} is not a UUID")
    dropped = srv.log_grep("has an id unfit for the billing call: dropped as failed", log_off)
    check(len(dropped) == 1, f"log lines about the tip: {dropped}")
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["queue_depth"] == 0 and
                 b["tips_in_flight"] == 0, 20, "the spool did not drain")
    check(not await B.tip_entries(svc, viewer), "the tip with the unfit id was charged")
    check(not [t for t in await svc.tips() if t.get("viewer") == viewer], "the tip reached the service")
    check(await svc.balance(viewer) == 1000 - 9, "balance after the batch")
    # Janus keeps serving: a room can be created and listed
    data = await ctx.sync({"request": "create", "description": "after unfit ids"})
    check(data.get("paystream") == "created", f"create after the replay: {short(data)}")
