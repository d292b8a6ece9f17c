"""paystream integration tests of the event handler notifications (docs/API.md
"Admin API and event handlers") and of the spool's limits (docs/BILLING.md:
spool_max_bytes, an unreadable journal tail at start).

Each test starts its own Janus with Janus's stock HTTP event handler
(libjanus_sampleevh.so, events = "plugins", grouped, plain JSON) posting to a
small HTTP backend in the test (harness.EventSink), and a plugin config billing
to the reference billing service shared with billing_tests.py.

Registered by suite.py (TESTS is appended to the suite's list).
"""

import asyncio
import functools
import os
import time

import billing_tests as B
import harness as H
from harness import check, expect_error, expect_ok, short

TESTS = []

SPOOL_FILE = "paystream.spool"


def test(timeout=120, registry=None):
    """Every test here has its own Janus and its own event backend.
    registry: the list the test joins (another module's TESTS), default
    this module's."""
    def deco(fn):
        @functools.wraps(fn)
        async def wrapped(ctx):
            sink = H.EventSink()
            ctx.sink = sink
            off = B._svc.log_size() if B._svc is not None else 0
            try:
                return await fn(ctx)
            except H.TestFailure as e:
                svc = B._svc
                tail = svc.log_since(off, 25) if svc is not None else ""
                evs = [d for _, d in sink.plugin_events()]
                raise H.TestFailure(f"{e}\n--- plugin events received ---\n{short(evs, 2500)}"
                                    f"\n--- billing-service log ---\n{tail}") from None
            finally:
                sink.close()
        (TESTS if registry is None else registry).append(
            (fn.__name__.removeprefix("test_"), wrapped, True, timeout))
        return fn
    return deco


def janus_workdir(ctx):
    """The folder of the Janus events_janus starts for this test."""
    return os.path.join(ctx.runner.root, f"{ctx.name}-janus")


async def events_janus(ctx, svc, **extra):
    """A private Janus billing to `svc`, with the HTTP event handler posting
    to ctx.sink."""
    workdir = janus_workdir(ctx)
    settings = dict(token_secret_previous=B.TOKEN_SECRET_PREVIOUS, billing_interval=1,
                    billing_timeout=2, billing_retry_max=2, instance=f"it-{ctx.name}")
    settings.update(extra)
    cfg = H.billing_plugin_config(svc.url, B.BILLING_SECRET, B.TOKEN_SECRET,
                                  os.path.join(workdir, "spool"), **settings)
    return await ctx.start_server(cfg, workdir, events_backend=ctx.sink.url)


def of_room(room):
    return lambda d: d.get("room") == room


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: the spool's line checksum,
    computed independently of the plugin's code."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def journal_entries(data):
    """The readable entries of a spool journal (docs/BILLING.md, "The spool
    on disk"), as the plugin reads it: lines "<crc32c of the rest, 8 hex>
    <kind> <fields>" up to the first unreadable one, as dicts
    {"e": "head"|"rec"|"batch"|"ack"|"tip"|"tipack", ...}; a batch gets the
    seqs it took. Returns (entries, length of the readable prefix)."""
    import json
    entries, pos, pending = [], 0, []
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        if len(line) < 10 or line[8:9] != b" " or line[:8] != b"%08x" % crc32c(line[9:]):
            break
        kind, rest = line[9:10].decode(), line[11:]
        try:
            if kind == "H":
                v, next_seq = rest.split(b" ")
                e = {"e": "head", "v": int(v), "next_seq": int(next_seq)}
            elif kind == "R":
                seq, rec = rest.split(b" ", 1)
                e = {"e": "rec", "seq": int(seq), "rec": json.loads(rec)}
                pending.append(e["seq"])
            elif kind == "B":
                first, count, bid = rest.split(b" ", 2)
                if not pending or pending[0] != int(first) or len(pending) < int(count):
                    break
                e = {"e": "batch", "id": bid.decode(), "seqs": pending[:int(count)]}
                pending = pending[int(count):]
            elif kind in ("A", "K"):
                e = {"e": "ack" if kind == "A" else "tipack", "id": rest.decode()}
            elif kind == "T":
                n, rest2 = rest.split(b" ", 1)
                e = {"e": "tip", "id": rest2[:int(n)].decode(), "tip": json.loads(rest2[int(n) + 1:])}
            else:
                break
        except ValueError:
            break
        entries.append(e)
        pos = nl + 1
    return entries, pos


def pending_records(entries):
    """Records of the journal not acknowledged by the billing service."""
    recs, batches, acked = {}, {}, set()
    for e in entries:
        if e.get("e") == "rec":
            recs[e["seq"]] = e["rec"]
        elif e.get("e") == "batch":
            batches[e.get("id")] = e.get("seqs") or []
        elif e.get("e") == "ack":
            acked.add(e.get("id"))
    done = {s for b, seqs in batches.items() if b in acked for s in seqs}
    return [r for s, r in sorted(recs.items()) if s not in done]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@test(timeout=90)
async def test_event_handlers(ctx):
    """The plugin's notify_event objects reach Janus's HTTP event handler:
    room, performer, viewer, session, room_usage (per room and interval),
    tip and session_ended events with the documented fields."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await events_janus(ctx, svc, billing_interval=2)
    price = 2
    room, key, _ = await ctx.create_room(price_per_second=price, currency="CRD")
    d = (await sink.wait("room_created", of_room(room), 10))[0]
    check(d.get("permanent") is False, f"room_created: {short(d)}")

    perf = await ctx.performer(color=B.RED)
    await perf.go_live(room, key, display="star")
    d = (await sink.wait("performer_live", of_room(room), 10))[0]
    check(d.get("display") == "star" and d.get("audiocodec") == "opus"
          and isinstance(d.get("videocodec"), str) and d.get("simulcast") is False,
          f"performer_live: {short(d)}")

    a_sub, b_sub = H.rand_id("evann"), H.rand_id("evbob")
    await svc.fund(a_sub, 100000)
    await svc.fund(b_sub, 100000)
    A = await B.paying_viewer(ctx, room, a_sub, display="Ann")
    Bv = await B.paying_viewer(ctx, room, b_sub, display="Bob")
    for v, disp in ((A, "Ann"), (Bv, "Bob")):
        mine = lambda d, v=v: d.get("room") == room and d.get("viewer_id") == v.sub  # noqa: E731
        d = (await sink.wait("viewer_watching", mine, 10))[0]
        check(d.get("display") == disp, f"viewer_watching: {short(d)}")
        d = (await sink.wait("session_started", mine, 10))[0]
        check(d.get("session") == v.session and d.get("viewer") == v.sub
              and d.get("price_per_second") == price and d.get("currency") == "CRD",
              f"session_started: {short(d)} (session {v.session})")
        await sink.wait("viewer_started", mine, 10)

    # both watch for a few seconds (billing_interval 2: ticks every 2 s)
    t_media = time.monotonic()
    await B.wait_tick(A, 5, 15)
    await B.wait_tick(Bv, 5, 15)

    tip_id = H.rand_id("evtip")
    r = expect_ok(await A.handle.request({"request": "tip", "amount": 10, "tip_id": tip_id,
                                          "message": "bravo"}), "tip_result", "tip")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    r = (await A.handle.wait_event(lambda e: e.name == "tip_result" and e.data.get("tip_id") == tip_id
                                   and e.data.get("status") != "pending", 15, what="tip result")).data
    check(r.get("status") == "accepted", f"tip_result: {short(r)}")
    d = (await sink.wait("tip", lambda d: d.get("tip_id") == tip_id, 10))[0]
    check(d.get("status") == "accepted" and d.get("room") == room and d.get("amount") == 10
          and d.get("message") == "bravo", f"tip event: {short(d)}")

    await B.leave(A)
    await B.leave(Bv)
    t_left = time.monotonic()
    for v in (A, Bv):
        mine = lambda d, v=v: d.get("room") == room and d.get("viewer_id") == v.sub  # noqa: E731
        d = (await sink.wait("viewer_left", mine, 10))[0]
        check(d.get("reason") == "left", f"viewer_left: {short(d)}")
        d = (await sink.wait("session_ended", mine, 10))[0]
        s = await B.ended_session(svc, v.session)
        check(d.get("session") == v.session and d.get("reason") == "left"
              and d.get("currency") == "CRD", f"session_ended: {short(d)}")
        check(d.get("seconds") == s["billed_seconds"] and d.get("amount") == s["billed_amount"]
              and s["mismatch"] == 0 and d.get("seconds", 0) >= 4,
              f"session_ended totals {short(d)} != the service's session {short(s)}")
        usage = await B.usage_entries(svc, v.sub)
        check(-sum(e["delta"] for e in usage) == d.get("amount"),
              f"{v.sub}: ledger sum {-sum(e['delta'] for e in usage)} != session_ended amount "
              f"{d.get('amount')}")

    data = await ctx.sync({"request": "destroy", "room": room})
    expect_ok(data, "destroyed", "destroy")
    await sink.wait("room_destroyed", of_room(room), 10)
    perf_off = await sink.wait("performer_offline", of_room(room), 10)
    check(perf_off[0].get("reason") == "destroyed", f"performer_offline: {short(perf_off)}")

    # room_usage: one per room per billing interval with seconds > 0
    usage_ev = sink.named("room_usage", of_room(room))
    elapsed = t_left - t_media
    intervals = elapsed / 2
    info = (f"{len(usage_ev)} room_usage events over {elapsed:.1f}s with billing_interval 2 "
            f"(~{intervals:.1f} intervals, 2 paying viewers): {short([d for _, d in usage_ev], 1500)}")
    check(usage_ev, "no room_usage event: " + info)
    check(all(isinstance(d.get("seconds"), int) and d["seconds"] > 0
              and d.get("amount") == price * d["seconds"] and d.get("currency") == "CRD"
              and d.get("paying_viewers") in (0, 1, 2) for _, d in usage_ev),
          "room_usage fields: " + info)
    # per room, not per viewer (2 viewers) and not per second
    check(len(usage_ev) <= intervals + 3, "too many room_usage events: " + info)
    check(any(d["seconds"] > 2 and d.get("paying_viewers") == 2 for _, d in usage_ev),
          "no room_usage event sums both viewers over an interval: " + info)
    check(all(d["seconds"] <= 2 * 2 + 2 for _, d in usage_ev), "room_usage seconds: " + info)
    total = sum(d["amount"] for _, d in usage_ev)
    billed = 0
    for v in (A, Bv):
        billed += (await svc.session(v.session))["billed_amount"]
    # the seconds after the last summary may be reported once the room is gone
    check(billed - 2 * 2 * price <= total <= billed,
          f"room_usage amounts sum to {total}, the viewers were billed {billed}: " + info)
    check(not sink.named("billing_failed") and not sink.named("spool_error"),
          f"unexpected events: {short(sink.named('billing_failed') + sink.named('spool_error'))}")


@test(timeout=150)
async def test_spool_full(ctx):
    """A full spool (billing failing, spool_max_bytes 4096): media keeps
    flowing, accepting_sessions false, new priced watch 459, a spool_error
    event; after recovery the spool drains, watch works again and nothing of
    the existing viewer's usage was lost."""
    sink = ctx.sink
    svc = await B.service(ctx)
    srv = await events_janus(ctx, svc, spool_max_bytes=4096)
    price = 1
    room, key, perf = await B.live_room(ctx, price)
    subs = [H.rand_id("full"), H.rand_id("full")]
    for s in subs:
        await svc.fund(s, 100000)
    A = await B.paying_viewer(ctx, room, subs[0])
    V2 = await B.paying_viewer(ctx, room, subs[1])
    await B.wait_tick(A, 2, 15)
    await B.poll(lambda: svc.session(A.session), lambda s: s["billed_seconds"] >= 1, 10,
                 "no tick reached the billing service before the outage")
    st = await B.plugin_billing_stats(ctx)
    check(st.get("accepting_sessions") is True and st.get("spool_max_bytes") == 4096,
          f"stats before the outage: {short(st)}")
    log_off = srv.log_size()[0]

    await svc.faults(fail_next=10 ** 6, endpoint="usage")
    t_out = time.monotonic()
    st = await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["accepting_sessions"] is False,
                      60, "stats: accepting_sessions never became false with the service failing")
    t_full = time.monotonic()
    check(st["spool_bytes"] <= 4096, f"spool_bytes above spool_max_bytes: {short(st)}")
    # (d) the event and the log line
    d = (await sink.wait("spool_error", None, 10))[0]
    check(d.get("error") == "spool_full" and isinstance(d.get("spool_bytes"), int)
          and 0 < d["spool_bytes"] <= 4096, f"spool_error: {short(d)}")
    check(srv.log_grep("spool: cannot append", log_off),
          "no 'spool: cannot append' line in the Janus log")
    # (a) media keeps flowing to the existing viewers, and they are metered
    n0 = A.nframes
    s_full = B.last_tick(A).data["seconds"]
    await A.wait_frames(30, 10)
    await V2.wait_frames(30, 10)
    check(A.nframes > n0, "frames stopped")
    # (c) a new priced session is refused
    late = await ctx.viewer("late")
    sub3 = H.rand_id("late")
    await svc.fund(sub3, 100000)
    ev = await late.watch(room, token=B.token(room, sub3))
    expect_error(ev, 459, "priced watch with the spool full")
    parts = await ctx.participants(room)
    check(B.viewer_entry(parts, sub3) is None, f"the refused viewer joined: {short(parts)}")
    # stays full while the service fails; metering goes on (kept in memory)
    await B.wait_tick(A, s_full + 3, 10)
    st = await B.plugin_billing_stats(ctx)
    check(st["accepting_sessions"] is False, f"stats while full: {short(st)}")
    check(len(sink.named("spool_error")) == 1,
          f"spool_error raised more than once while full: {short(sink.named('spool_error'))}")
    told_full = B.last_tick(A).data["seconds"]

    # recovery
    await svc.reset_faults()
    st = await B.poll(lambda: B.plugin_billing_stats(ctx),
                      lambda b: b["accepting_sessions"] is True and b["consecutive_failures"] == 0,
                      30, "the spool did not drain / accepting_sessions stayed false after recovery")
    check(srv.log_grep("spool drained", log_off), "no 'spool drained' line in the Janus log")
    await sink.wait("billing_recovered", None, 10)
    late2 = await ctx.viewer("late2")
    ev = await late2.join_live(room, token=B.token(room, sub3))
    check(ev.data.get("session"), f"watch after recovery: {short(ev.data)}")
    await late2.wait_frames(10, 15)
    await A.wait_frames(5, 10)

    t_told = {}
    for v in (A, V2, late2):
        t_told[v] = B.last_tick(v).data["seconds"] if B.last_tick(v) else 0
        await B.leave(v)
    for v in (A, V2):
        s = await B.ended_session(svc, v.session, 20)
        # told_full is A's own tick while full; V2 started later and may be a second behind A
        floor = max(t_told[v], told_full) if v is A else t_told[v]
        check(s["reported_seconds"] >= floor,
              f"{v.label}: session_end {short(s)} below the last tick {floor}")
        check((s["billed_seconds"], s["billed_amount"]) == (s["reported_seconds"], s["reported_amount"])
              and s["mismatch"] == 0,
              f"{v.label}: usage lost or doubled while the spool was full: {short(s)}")
        usage = await B.usage_entries(svc, v.sub)
        B.check_refs_unique(usage, v.sub)
        check(-sum(e["delta"] for e in usage) == s["reported_amount"],
              f"{v.label}: ledger sum {-sum(e['delta'] for e in usage)} != final total "
              f"{s['reported_amount']}")
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["queue_depth"] == 0, 20,
                 "queue_depth did not go back to 0")
    _ = t_out


@test(timeout=150)
async def test_spool_corrupt_at_start(ctx):
    """A journal with a torn last line and garbage after it: Janus starts,
    reports the dropped bytes (log, spool_corrupt event, saved copy) and the
    readable records are delivered after the service recovers."""
    sink = ctx.sink
    svc = await B.service(ctx)
    srv = await events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 2)
    sub = H.rand_id("torn")
    await svc.fund(sub, 100000)
    v = await B.paying_viewer(ctx, room, sub)
    sid = v.session
    await B.wait_tick(v, 2, 15)
    await B.poll(lambda: svc.session(sid), lambda s: s["billed_seconds"] >= 1, 10,
                 "ticks did not reach the billing service before the outage")
    await svc.faults(fail_next=10 ** 6, endpoint="usage")
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["consecutive_failures"] > 0, 10,
                 "stats: consecutive_failures stayed 0")
    s_k = B.last_tick(v).data["seconds"]
    await B.wait_tick(v, s_k + 4, 10)
    refs_before = {e["ref"] for e in await B.usage_entries(svc, sub)}
    delivered = (await svc.session(sid))["billed_seconds"]

    rc = await asyncio.to_thread(srv.stop)
    check(rc == 0, f"janus exit code {rc} on SIGTERM")
    await ctx.cleanup()
    path = os.path.join(srv.workdir, "spool", SPOOL_FILE)
    with open(path, "rb") as f:
        data = f.read()
    entries, good = journal_entries(data)
    check(good == len(data) and entries, f"the journal written by the plugin is not readable "
          f"({good}/{len(data)} bytes)")
    # tear the last line in the middle, add garbage lines after it
    last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
    torn = data[last_start:last_start + (len(data) - last_start) // 2]
    tail = torn + b"\nnot a spool line \xff\xfe\n" + b"0" * 8 + b" R 1 {"
    with open(path, "wb") as f:
        f.write(data[:last_start] + tail)
    kept, _ = journal_entries(data[:last_start])
    lost = entries[len(kept):]
    check(len(lost) == 1, f"expected to drop one entry, dropped {lost}")
    pend = [r for r in pending_records(kept) if r.get("session") == sid]
    pend_ticks = [r for r in pend if r.get("type") == "tick"]
    check(pend_ticks, f"no readable pending tick of the session in the journal: {short(pend)}")

    log_off = srv.log_size()[0]
    await asyncio.to_thread(srv.start)
    check(srv.alive(), srv.death_reason() or "janus died")
    lines = srv.log_grep("unreadable bytes", log_off)
    check(lines and f"{len(tail)} unreadable bytes" in lines[0],
          f"log lines about the dropped tail ({len(tail)} bytes): {lines}")
    d = (await sink.wait("spool_corrupt", None, 10))[0]
    check(d.get("dropped_bytes") == len(tail) and d.get("dropped_lines") == 3,
          f"spool_corrupt {short(d)}; dropped {len(tail)} bytes in 3 lines")
    saved = d.get("saved_to")
    check(isinstance(saved, str) and os.path.isfile(saved),
          f"spool_corrupt saved_to {saved!r} is not a file")
    with open(saved, "rb") as f:
        check(f.read() == tail, f"{saved} does not hold the dropped tail")

    await svc.reset_faults()
    want = refs_before | {r["record_id"] for r in pend_ticks}
    await B.poll(lambda: B.plugin_billing_stats(ctx),
                 lambda b: b["queue_depth"] == 0 and b["consecutive_failures"] == 0, 25,
                 "the restarted plugin did not empty its spool")
    usage = await B.usage_entries(svc, sub)
    B.check_refs_unique(usage, sub)
    refs = {e["ref"] for e in usage}
    lost_ids = {x.get("rec", {}).get("record_id") for x in lost if x.get("e") == "rec"}
    check(refs == want, f"ledger refs after the replay {sorted(refs)} != delivered before "
          f"{sorted(refs_before)} + readable pending ticks {sorted(r['record_id'] for r in pend_ticks)}"
          f" (dropped: {lost_ids})")
    s = await svc.session(sid)
    exp_secs = delivered + sum(r["seconds"] for r in pend_ticks)
    check(s["billed_seconds"] == exp_secs and s["billed_amount"] == 2 * exp_secs,
          f"session after the replay {short(s)}; want {exp_secs}s from the readable records")
    st = await svc.stats()
    check(st["ledger"]["consistent"], f"ledger: {st['ledger']}")

