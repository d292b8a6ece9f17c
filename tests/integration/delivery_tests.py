"""paystream integration tests of how usage and tips reach the billing
service (docs/BILLING.md "Status codes and retries", "POST /v1/tips";
docs/API.md tip, stats and the billing_failed / billing_recovered events):
failure and recovery events, the retry backoff, timeouts and 429s, tips
without a tip_id, tips sent at once, a tip spooled across a SIGKILL, and
the small limits (multibyte messages, a budget below a second, a tip when
the spool is full).

Each test starts its own Janus with the HTTP event handler posting to a sink
of the test (events_tests.py's decorator and events_janus), billing to
billing_tests.py's reference service, whose GET /admin/requests lists every
signed call it saw (key, arrival time, status).

Registered by suite.py (TESTS is appended to the suite's list).
"""

import asyncio
import os
import re
import time
import urllib.parse

import billing_tests as B
import events_tests as E
import harness as H
from harness import check, expect_error, expect_ok, short

TESTS = []

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# billing_janus / events_janus: billing_timeout = 2, billing_retry_max = 2
BILLING_TIMEOUT_S = 2
RETRY_MAX_S = 2
RETRY_BASE_S = 0.25     # docs/BILLING.md: the n-th retry waits [w/2, w], w = min(0.25 s x 2^n, retry_max)


def test(timeout=120):
    return E.test(timeout, registry=TESTS)


def now_ms():
    return int(time.time() * 1000)


async def requests_seen(svc, endpoint=None, key=None, since_ms=0):
    """The service's signed calls (GET /admin/requests), oldest first."""
    q = {k: v for k, v in (("endpoint", endpoint), ("key", key)) if v is not None}
    path = "/admin/requests" + ("?" + urllib.parse.urlencode(q) if q else "")
    return [r for r in (await svc.get(path))["requests"] if r["received_ms"] >= since_ms]


def retry_window_s(n):
    """The n-th retry's window (n = 0 for the first retry): it waits [w/2, w]."""
    return min(RETRY_BASE_S * 2 ** n, RETRY_MAX_S)


async def final_tip_result(v, tip_id, timeout=15):
    return (await v.handle.wait_event(
        lambda e: e.name == "tip_result" and e.data.get("tip_id") == tip_id
        and e.data.get("status") != "pending", timeout, what=f"final tip_result of {tip_id}")).data


async def tip(v, **body):
    return await v.handle.request(dict({"request": "tip"}, **body))


async def billed_once(svc, v, price):
    """After the viewer left: its session is billed exactly its session_end
    totals, each record id charged once, the ledger sums to it."""
    s = await B.ended_session(svc, v.session, 20)
    check((s["billed_seconds"], s["billed_amount"]) == (s["reported_seconds"], s["reported_amount"])
          and s["mismatch"] == 0 and s["billed_amount"] == price * s["billed_seconds"],
          f"{v.label}: ticks applied != session_end totals (lost or doubled records): {short(s)}")
    await B.check_usage_ledger(svc, v.sub, s["reported_amount"], v.label)
    return s


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@test(timeout=150)
async def test_billing_failed_recovered_events(ctx):
    """A /v1/usage outage (503s) then recovery: billing_failed (call usage,
    status 503) for the 1st and the 10th failure; a tip accepted meanwhile
    (/v1/tips answering) raises no billing_recovered and leaves the usage
    count > 0; after recovery one billing_recovered (call usage) whose
    failures = the 503s the service gave; stats go > 0 then back to 0 and
    consecutive_tip_failures stays 0 throughout."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 2)
    v = await B.funded_viewer(ctx, svc, room, "fail", ticks=2)
    await B.wait_first_billed(svc, v, "no tick reached the billing service before the outage")
    check(not sink.named("billing_failed") and not sink.named("billing_recovered"),
          f"billing events before any fault: {short(sink.named('billing_failed'))}")
    samples = []

    async def stats():
        b = await B.plugin_billing_stats(ctx)
        samples.append(b)
        return b

    st0 = await svc.stats()
    await svc.faults(fail_next=10 ** 6, endpoint="usage")
    d = (await sink.wait("billing_failed", None, 15))[0]
    check(d == {"event": "billing_failed", "call": "usage", "status": 503, "consecutive_failures": 1},
          f"first billing_failed: {short(d)}")
    await B.poll(stats, lambda b: b["consecutive_failures"] >= 10, 40,
                 "stats: fewer than 10 consecutive failures")
    d10 = (await sink.wait("billing_failed", lambda d: d.get("consecutive_failures") == 10, 10))[0]
    check(d10.get("call") == "usage" and d10.get("status") == 503, f"10th billing_failed: {short(d10)}")

    # a tip while only /v1/usage fails: answered, no billing_recovered
    tid = H.rand_id("tip")
    r = expect_ok(await tip(v, amount=5, tip_id=tid), "tip_result", "tip during the usage outage")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    r = await final_tip_result(v, tid)
    check(r.get("status") == "accepted", f"tip during the usage outage: {short(r)}")
    # the plugin notifies `tip` after it noted the tip call's success, and the
    # event handler keeps the order: a billing_recovered would have come first
    await sink.wait("tip", lambda d: d.get("tip_id") == tid, 10)
    check(not sink.named("billing_recovered"),
          f"billing_recovered while /v1/usage still fails: {short(sink.named('billing_recovered'))}")
    b = await stats()
    check(b["consecutive_failures"] >= 10 and b["consecutive_tip_failures"] == 0,
          f"stats after a tip during the usage outage: {short(b)}")

    await svc.reset_faults()
    d = (await sink.wait("billing_recovered", None, 20))[0]
    st1 = await svc.stats()
    failed = B.stat(st1, "faults", "failed") - B.stat(st0, "faults", "failed")
    last_failed = max(x["consecutive_failures"] for _, x in sink.named("billing_failed"))
    check(d.get("call") == "usage" and d.get("failures") == failed and failed >= last_failed,
          f"billing_recovered {short(d)}: the service failed {failed} usage calls, "
          f"last billing_failed counted {last_failed}")
    fails = [x for _, x in sink.named("billing_failed")]
    check(all(x.get("call") == "usage" and x.get("status") == 503 for x in fails)
          and [x["consecutive_failures"] for x in fails] == [1] + list(range(10, failed + 1, 10)),
          f"billing_failed events (want the 1st and every 10th of {failed}): {short(fails, 1500)}")
    b = await B.poll(stats, lambda b: b["consecutive_failures"] == 0 and b["queue_depth"] == 0, 20,
                     "stats: consecutive_failures / queue_depth not back to 0 after recovery")
    check(len(sink.named("billing_recovered")) == 1,
          f"billing_recovered events: {short(sink.named('billing_recovered'))}")
    bad = [x for x in samples if x.get("consecutive_tip_failures") != 0]
    check(not bad, f"consecutive_tip_failures moved with only /v1/usage failing: {short(bad)}")
    check(max(x["consecutive_failures"] for x in samples) >= 10, "stats never showed the failures")
    await B.leave(v)
    await billed_once(svc, v, 2)


@test(timeout=120)
async def test_backoff_bounded(ctx):
    """Measured: the arrival times, at the service, of every /v1/usage call
    during a ~12 s outage (503s; billing_retry_max = 2). Asserted: they all
    carry one batch's Idempotency-Key; their number n is at most what the
    documented backoff allows in their span (the k-th retry waits at least
    min(0.25 s x 2^k, 2 s) / 2: 0.125, 0.25, 0.5, 1, 1, ... s) plus one; the
    time from the first to each later attempt is at least the sum of those
    minimum waits (- 0.15 s of latency slack), every wait once the cap is
    reached is >= 0.9 s, the first two gaps are shorter than the average
    capped one (the gaps grow), no gap exceeds its window + 2 s (retries go
    on), and the first call after the outage re-sends the same key (200)."""
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 2)
    v = await B.funded_viewer(ctx, svc, room, "back", ticks=2)
    await B.wait_first_billed(svc, v, "no tick reached the billing service before the outage")
    t0 = now_ms()
    await svc.faults(fail_next=10 ** 6, endpoint="usage")
    await B.poll(lambda: requests_seen(svc, "usage", since_ms=t0),
                 lambda rs: any(r["status"] == 503 for r in rs), 15, "no 503 given to /v1/usage")
    s_out = B.last_tick(v).data["seconds"]
    await B.wait_tick(v, s_out + 12, 30)        # ~12 s of outage (metering goes on)
    await svc.reset_faults()
    t_reset = now_ms()
    rs = await B.poll(lambda: requests_seen(svc, "usage", since_ms=t0),
                      lambda rs: any(r["status"] == 200 and r["received_ms"] > t_reset for r in rs), 15,
                      "no /v1/usage call answered after the outage")
    fails = [r for r in rs if r["status"] == 503]
    keys = {r["key"] for r in fails}
    check(len(keys) == 1, f"the outage's attempts carry {len(keys)} keys (one batch retried): {keys}")
    after = [r for r in rs if r["received_ms"] > fails[-1]["received_ms"]]
    check(after and after[0]["key"] in keys and after[0]["status"] == 200,
          f"the first call after the outage: {short(after[:2])} (want the same batch, 200)")
    times = [r["received_ms"] / 1000 for r in fails]
    gaps = [b - a for a, b in zip(times, times[1:])]
    n, span = len(times), times[-1] - times[0]
    mins = [retry_window_s(k) / 2 for k in range(n - 1)]
    # the most attempts the backoff allows within span (+ 0.2 s slack)
    allowed, acc = 1, 0.0
    while acc + retry_window_s(allowed - 1) / 2 <= span + 0.2:
        acc += retry_window_s(allowed - 1) / 2
        allowed += 1
    info = (f"{n} attempts over {span:.2f}s (allowed {allowed}); gaps "
            f"{[round(g, 3) for g in gaps]}; minimum waits {mins}")
    check(span >= 9, "outage shorter than planned: " + info)
    check(n <= allowed + 1, "more attempts than the backoff allows: " + info)
    check(n >= 5, "too few attempts (retries stalled?): " + info)
    for j in range(1, n):
        check(times[j] - times[0] >= sum(mins[:j]) - 0.15,
              f"attempt {j} came {times[j] - times[0]:.3f}s after the first, before the backoff's "
              f"{sum(mins[:j]):.3f}s: " + info)
    capped = [g for k, g in enumerate(gaps) if retry_window_s(k) >= RETRY_MAX_S]
    check(capped and all(g >= 0.9 for g in capped), "a wait shorter than the capped backoff: " + info)
    check(max(gaps[:2]) < sum(capped) / len(capped), "the gaps do not grow: " + info)
    check(all(g <= retry_window_s(k) + 2.0 for k, g in enumerate(gaps)),
          "a gap far beyond its backoff window: " + info)
    check(min(gaps) >= 0.08, "a tight retry loop: " + info)
    await B.leave(v)
    await billed_once(svc, v, 2)


@test(timeout=150)
async def test_timeout_and_429(ctx):
    """Replies delayed 3.5 s (billing_timeout 2): the plugin counts a
    failure (billing_failed status 0) and re-sends the same batch_id, which
    the service (having applied the late attempt) answers from its
    idempotency record; 3 replies 429: billing_failed status 429, the same
    batch re-sent until a 200, billing_recovered failures 3. The session is
    billed exactly its session_end totals, each record once, no 409."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 2)
    v = await B.funded_viewer(ctx, svc, room, "slow", ticks=2)
    await B.wait_first_billed(svc, v, "no tick reached the billing service")
    st0 = await svc.stats()

    # (a) replies later than billing_timeout
    delay_ms = BILLING_TIMEOUT_S * 1000 + 1500
    await svc.faults(delay_ms=delay_ms, endpoint="usage")
    ta = now_ms()       # every call received from now on is delayed
    d = (await sink.wait("billing_failed", None, 20))[0]
    check(d.get("call") == "usage" and d.get("status") == 0 and d.get("consecutive_failures") == 1,
          f"billing_failed for a reply past billing_timeout: {short(d)}")
    rs = await B.poll(lambda: requests_seen(svc, "usage", since_ms=ta),
                      lambda rs: rs and len([r for r in rs if r["key"] == rs[0]["key"]]) >= 2, 20,
                      "the timed-out batch was not re-sent")
    k1 = rs[0]["key"]
    # the first attempt was applied after its delay (its reply came too late)
    await B.poll(lambda: requests_seen(svc, "usage", key=k1),
                 lambda rs: rs[0]["ms"] is not None or time.time() * 1000 - rs[0]["received_ms"] > delay_ms + 1500,
                 15, "the delayed attempt never finished")
    await svc.reset_faults()
    await sink.wait("billing_recovered", None, 20)
    rs = await requests_seen(svc, "usage", key=k1)
    check(len(rs) >= 2 and rs[-1]["status"] == 200 and rs[-1]["ms"] < delay_ms,
          f"attempts of batch {k1}: {short(rs, 1500)}")
    check(rs[0]["ms"] is None or rs[0]["ms"] >= delay_ms,
          f"the first attempt was not delayed: {short(rs[0])}")
    st1 = await svc.stats()
    check(B.stat(st1, "duplicate_requests", "usage") - B.stat(st0, "duplicate_requests", "usage") >= 1,
          f"the re-sent batch was not answered from the idempotency record: {st1['duplicate_requests']}")
    rec = sink.named("billing_recovered")[0][1]
    check(rec.get("call") == "usage" and rec.get("failures") >= 1, f"billing_recovered: {short(rec)}")

    # (b) 429
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["consecutive_failures"] == 0, 10,
                 "consecutive_failures not back to 0")
    tb = now_ms()       # (before: every call that takes a 429 is received after tb)
    await svc.faults(fail_next=3, status=429, endpoint="usage")
    d = (await sink.wait("billing_failed", lambda d: d.get("status") == 429, 15))[0]
    check(d.get("call") == "usage" and d.get("consecutive_failures") == 1, f"billing_failed (429): {short(d)}")
    rec = (await sink.wait("billing_recovered", None, 20, count=2))[1]
    check(rec.get("call") == "usage" and rec.get("failures") == 3, f"billing_recovered after 3 429s: {short(rec)}")
    rs = await requests_seen(svc, "usage", since_ms=tb)
    check(len(rs) >= 4 and [r["status"] for r in rs[:4]] == [429, 429, 429, 200]
          and len({r["key"] for r in rs[:4]}) == 1,
          f"calls after the 429s were injected: {short(rs[:5], 1500)}")
    st2 = await svc.stats()
    check(B.stat(st2, "requests", "usage", "429") - B.stat(st1, "requests", "usage", "429") == 3,
          f"429 replies: {st2['requests']}")

    await v.wait_frames(5, 10)
    await B.leave(v)
    await billed_once(svc, v, 2)
    st3 = await svc.stats()
    check(B.stat(st3, "conflicts") == B.stat(st0, "conflicts"), f"conflicts: {st3['conflicts']}")


@test(timeout=90)
async def test_tip_without_id(ctx):
    """A tip without tip_id: the reply is tip_result pending with a
    generated UUID; the final tip_result, the room's tip broadcast (performer,
    tipper, another viewer), the event handler's tip event and the service's
    tip all carry that id; charged once. A second tip without id gets
    another UUID."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 2)
    a_sub, b_sub = H.rand_id("noid"), H.rand_id("other")
    await svc.fund(a_sub, 1000)
    await svc.fund(b_sub, 1000)
    A = await B.paying_viewer(ctx, room, a_sub, display="Ann")
    Bv = await B.paying_viewer(ctx, room, b_sub, display="Bob")
    r = expect_ok(await tip(A, amount=7, message="no id"), "tip_result", "tip without tip_id")
    tid = r.get("tip_id")
    check(isinstance(tid, str) and UUID_RE.fullmatch(tid) and r.get("status") == "pending",
          f"tip_result for a tip without id: {short(r)} (want pending with a UUID)")
    r = await final_tip_result(A, tid)
    check(r.get("status") == "accepted", f"final tip_result: {short(r)}")
    for p in (perf, A, Bv):
        e = (await p.handle.wait_event(lambda e: e.name == "tip" and e.data.get("tip_id") == tid, 10,
                                       what=f"'tip' {tid}")).data
        check(e.get("amount") == 7 and e.get("display") == "Ann" and e.get("message") == "no id",
              f"{p.label}: tip event {short(e)}")
    d = (await sink.wait("tip", lambda d: d.get("tip_id") == tid, 10))[0]
    check(d.get("status") == "accepted" and d.get("viewer") == a_sub, f"event handler tip: {short(d)}")
    st = [x for x in await svc.tips() if x["tip_id"] == tid]
    check(len(st) == 1 and st[0]["status"] == "accepted" and st[0]["viewer"] == a_sub
          and st[0]["amount"] == 7, f"service tips with {tid}: {short(st)}")
    check([(x["ref"], x["delta"]) for x in await B.tip_entries(svc, a_sub)] == [(tid, -7)],
          f"tipper's tip ledger: {short(await B.tip_entries(svc, a_sub))}")
    check([(x["ref"], x["delta"]) for x in await B.tip_entries(svc, "room:" + room)] == [(tid, 7)],
          "room's tip ledger")
    r2 = expect_ok(await tip(A, amount=5), "tip_result", "second tip without tip_id")
    check(UUID_RE.fullmatch(r2.get("tip_id") or "") and r2["tip_id"] != tid,
          f"second generated tip_id {r2.get('tip_id')!r} (first {tid})")
    check((await final_tip_result(A, r2["tip_id"])).get("status") == "accepted", "second tip")
    check(sorted(x["ref"] for x in await B.tip_entries(svc, a_sub)) == sorted([tid, r2["tip_id"]]),
          "tipper's ledger after two tips without id")
    for p in (perf, A, Bv):
        n = len([e for e in p.handle.events if e.name == "tip" and e.data.get("tip_id") == tid])
        check(n == 1, f"{p.label}: the first tip was shown {n} times")


@test(timeout=90)
async def test_tip_sent_at_once(ctx):
    """billing_interval = 10: a tip sent right after a usage batch arrived
    is at the service and shown in the room within 3 s, with no usage call
    in between (it does not wait for the next batch, ~10 s away)."""
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc, billing_interval=10)
    room, key, perf = await B.live_room(ctx, 2)
    sub = H.rand_id("fast")
    await svc.fund(sub, 1000)
    v = await B.paying_viewer(ctx, room, sub)
    t0 = now_ms()
    await B.poll(lambda: requests_seen(svc, "usage", since_ms=t0), lambda rs: len(rs) >= 1, 25,
                 "no usage batch with billing_interval 10", interval=0.05)
    t_tip = time.monotonic()
    t_tip_ms = now_ms()
    tid = H.rand_id("tip")
    r = expect_ok(await tip(v, amount=3, tip_id=tid), "tip_result", "tip")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    e = await v.handle.wait_event(lambda e: e.name == "tip" and e.data.get("tip_id") == tid, 10,
                                  what="'tip' broadcast")
    took = e.t - t_tip
    check(took <= 3.0, f"the tip was shown {took:.2f}s after it was sent (billing_interval 10)")
    calls = await requests_seen(svc, since_ms=t_tip_ms)
    tips = [r for r in calls if r["endpoint"] == "tips"]
    check(tips and tips[0]["key"] == tid and tips[0]["received_ms"] - t_tip_ms <= 3000,
          f"the service's calls after the tip: {short(calls, 1500)}")
    usage_before = [r for r in calls if r["endpoint"] == "usage" and r["received_ms"] <= tips[0]["received_ms"]]
    check(not usage_before, f"a usage call came before the tip: {short(usage_before)}")


@test(timeout=180)
async def test_tip_spooled_kill9(ctx):
    """A tip while /v1/tips fails (503), Janus killed with SIGKILL: the
    journal holds the tip, unacknowledged; restarted on the same folder
    (still failing) it retries the tip with its original tip_id
    (billing_failed call tip), and the same tip_id from a new handle is answered as a repeat (pending, repeated_tip_id);
    once the service answers, the tip is charged exactly once (tipper and
    room ledgers), the event handler gets one `tip` event (accepted), every
    /v1/tips attempt carried the tip_id, some before and some after the
    kill; a repeat afterwards is tip_result accepted / repeated_tip_id."""
    sink = ctx.sink
    svc = await B.service(ctx)
    srv = await E.events_janus(ctx, svc, tip_timeout=90)
    room, key, perf = await B.live_room(ctx, 2)
    sub = H.rand_id("kill")
    await svc.fund(sub, 1000)
    v = await B.paying_viewer(ctx, room, sub, display="Kim")
    await B.wait_tick(v, 1, 15)
    await svc.faults(fail_next=10 ** 6, endpoint="tips")
    tid = H.rand_id("tip")
    r = expect_ok(await tip(v, amount=9, message="spooled", tip_id=tid), "tip_result", "tip")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    d = (await sink.wait("billing_failed", lambda d: d.get("call") == "tip", 15))[0]
    check(d.get("status") == 503 and d.get("consecutive_failures") == 1, f"billing_failed: {short(d)}")
    await B.poll(lambda: B.plugin_billing_stats(ctx),
                 lambda b: b["tips_in_flight"] == 1 and b["consecutive_tip_failures"] >= 2, 15,
                 "stats: the tip is not being retried")
    check(not [x for x in await svc.tips() if x["tip_id"] == tid], "the service recorded the tip")

    rc = srv.kill9()
    t_kill = now_ms()
    check(rc == -9, f"janus exit {rc} after SIGKILL")
    await ctx.cleanup()
    with open(os.path.join(srv.workdir, "spool", E.SPOOL_FILE), "rb") as f:
        entries, _ = E.journal_entries(f.read())
    spooled = [e for e in entries if e["e"] == "tip" and e["id"] == tid]
    check(len(spooled) == 1 and spooled[0]["tip"].get("amount") == 9
          and spooled[0]["tip"].get("viewer") == sub
          and not [e for e in entries if e["e"] == "tipack" and e["id"] == tid],
          f"the journal after the kill: tip entries {short(spooled)}")
    n_before = len(await requests_seen(svc, "tips", key=tid))
    check(n_before >= 2, f"{n_before} attempts before the kill")

    await asyncio.to_thread(srv.start)
    check(srv.alive(), srv.death_reason() or "janus died after the restart")
    await sink.wait("billing_failed", lambda d: d.get("call") == "tip", 20, count=2)
    check(not await ctx.exists(room), "a non-permanent room survived the restart")
    room2, key2, perf2 = await B.live_room(ctx, 2)
    v2 = await B.paying_viewer(ctx, room2, sub, display="Kim")
    r = expect_ok(await tip(v2, amount=9, message="spooled", tip_id=tid), "tip_result",
                  "the tip_id the previous run is still sending")
    check(r.get("status") == "pending" and r.get("reason") == "repeated_tip_id",
          f"a repeat of the spooled tip while it is in flight: {short(r)}")

    await svc.reset_faults()
    st = await B.poll(lambda: svc.tips(), lambda ts: any(x["tip_id"] == tid for x in ts), 20,
                      "the spooled tip never reached the service after the restart")
    st = [x for x in st if x["tip_id"] == tid]
    check(len(st) == 1 and st[0]["status"] == "accepted" and st[0]["amount"] == 9
          and st[0]["room"] == room and st[0]["message"] == "spooled", f"service tip: {short(st)}")
    d = (await sink.wait("tip", lambda d: d.get("tip_id") == tid, 15))[0]
    check(d.get("status") == "accepted" and d.get("amount") == 9 and d.get("room") == room,
          f"event handler tip after the restart: {short(d)}")
    await B.poll(lambda: B.plugin_billing_stats(ctx),
                 lambda b: b["tips_in_flight"] == 0 and b["consecutive_tip_failures"] == 0, 15,
                 "stats: the tip still in flight")
    check([(x["ref"], x["delta"]) for x in await B.tip_entries(svc, sub)] == [(tid, -9)],
          f"tipper's tip ledger: {short(await B.tip_entries(svc, sub))}")
    check([(x["ref"], x["delta"]) for x in await B.tip_entries(svc, "room:" + room)] == [(tid, 9)],
          "room's tip ledger")
    calls = await requests_seen(svc, "tips", key=tid)
    statuses = [c["status"] for c in calls]
    check(statuses[-1] == 200 and all(s == 503 for s in statuses[:-1])
          and any(c["received_ms"] < t_kill for c in calls)
          and any(c["received_ms"] > t_kill and c["status"] == 503 for c in calls),
          f"/v1/tips attempts with {tid}: {short(calls, 1500)}")
    r = expect_ok(await tip(v2, amount=9, message="spooled", tip_id=tid), "tip_result", "repeat after settling")
    check(r.get("status") == "accepted" and r.get("reason") == "repeated_tip_id", f"repeat: {short(r)}")
    check(len(sink.named("tip", lambda d: d.get("tip_id") == tid)) == 1,
          f"tip events for {tid}: {short(sink.named('tip'))}")
    check(len(await B.tip_entries(svc, sub)) == 1, "the repeat was charged")


@test(timeout=90)
async def test_tip_multibyte_message(ctx):
    """A 200-character message of multibyte characters ("é" x 100 + an emoji
    x 100, 600 bytes) and one of 200 emoji (800 bytes) are accepted and
    reach the room, the event handler and the service intact; "é" x 201 is
    460."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 2)
    sub = H.rand_id("utf")
    await svc.fund(sub, 1000)
    v = await B.paying_viewer(ctx, room, sub)
    for msg in ("é" * 100 + "\U0001F600" * 100, "\U0001F3B6" * 200):
        check(len(msg) == 200, "test message length")
        tid = H.rand_id("tip")
        r = expect_ok(await tip(v, amount=2, message=msg, tip_id=tid), "tip_result",
                      f"tip with a {len(msg.encode())}-byte message")
        check(r.get("status") == "pending", f"tip reply: {short(r)}")
        check((await final_tip_result(v, tid)).get("status") == "accepted", "multibyte tip")
        for p in (perf, v):
            e = (await p.handle.wait_event(lambda e: e.name == "tip" and e.data.get("tip_id") == tid, 10,
                                           what=f"'tip' {tid}")).data
            check(e.get("message") == msg, f"{p.label}: message arrived as {e.get('message')!r}")
        d = (await sink.wait("tip", lambda d: d.get("tip_id") == tid, 10))[0]
        check(d.get("message") == msg, f"event handler tip message {d.get('message')!r}")
        st = [x for x in await svc.tips() if x["tip_id"] == tid]
        check(len(st) == 1 and st[0]["message"] == msg, f"service tip message: {short(st)}")
    expect_error(await tip(v, amount=2, message="é" * 201), 460, "a message of 201 characters")


@test(timeout=90)
async def test_budget_below_one_second(ctx):
    """A token whose budget is below one second's price (4 for price 5) is
    refused at watch with 458 (the text names the budget) and the viewer is
    not in the room, no session started; a budget of exactly one second is
    accepted."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    room, key, perf = await B.live_room(ctx, 5)
    sub = H.rand_id("poor")
    await svc.fund(sub, 1000)
    h = await ctx.handle()
    ev = await h.request({"request": "watch", "room": room, "token": B.token(room, sub, budget=4)})
    expect_error(ev, 458, "watch with a budget below one second's price")
    check("budget" in ev.data.get("error", ""), f"458 text: {ev.data.get('error')!r}")
    check(B.viewer_entry(await ctx.participants(room), sub) is None, "the refused viewer joined")
    v = await B.paying_viewer(ctx, room, sub, budget=5)
    check(v.session, "budget of one second refused")
    await sink.wait("session_started", lambda d: d.get("session") == v.session, 10)
    started = [d for _, d in sink.named("session_started", lambda d: d.get("viewer") == sub)]
    check(len(started) == 1, f"session_started events for {sub}: {short(started)}")


@test(timeout=150)
async def test_tip_spool_full(ctx):
    """spool_max_bytes = 4096 with /v1/usage failing until the spool is full
    (accepting_sessions false): a tip is refused with 459 and never reaches
    the service; after recovery the same tip_id is accepted and charged
    once."""
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc, spool_max_bytes=4096)
    room, key, perf = await B.live_room(ctx, 1)
    subs = [H.rand_id("full"), H.rand_id("full")]
    for s in subs:
        await svc.fund(s, 1000)
    A = await B.paying_viewer(ctx, room, subs[0])
    V2 = await B.paying_viewer(ctx, room, subs[1])
    await B.wait_tick(A, 1, 15)
    await svc.faults(fail_next=10 ** 6, endpoint="usage")
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["accepting_sessions"] is False, 60,
                 "stats: accepting_sessions never became false")
    tid = H.rand_id("tip")
    msg = "full " * 40
    expect_error(await tip(A, amount=3, message=msg, tip_id=tid), 459, "tip with the spool full")
    b = await B.plugin_billing_stats(ctx)
    check(b["tips_in_flight"] == 0, f"stats after a refused tip: {short(b)}")
    await svc.reset_faults()
    await B.poll(lambda: B.plugin_billing_stats(ctx), lambda b: b["accepting_sessions"] is True, 30,
                 "the spool did not drain")
    check(not [x for x in await svc.tips() if x["tip_id"] == tid], "the refused tip reached the service")
    r = expect_ok(await tip(A, amount=3, message=msg, tip_id=tid), "tip_result", "tip after the drain")
    check(r.get("status") == "pending" and r.get("reason") is None, f"tip after the drain: {short(r)}")
    check((await final_tip_result(A, tid)).get("status") == "accepted", "tip after the drain")
    check([(x["ref"], x["delta"]) for x in await B.tip_entries(svc, subs[0])] == [(tid, -3)],
          f"tip ledger: {short(await B.tip_entries(svc, subs[0]))}")
    _ = V2


@test(timeout=90)
async def test_tip_declined_and_failed(ctx):
    """A tip above the balance: the tipper alone gets tip_result declined
    (insufficient_funds), nobody sees a `tip`, the event handler gets `tip`
    declined with that reason, nothing is charged. A tip while /v1/tips
    answers 503 and tip_timeout is 4 s: the service sees several attempts,
    all with its tip_id as Idempotency-Key, spaced by the backoff (at most
    2 s apart); the tipper gets tip_result failed (billing_unreachable) no
    sooner than tip_timeout after sending it and within a few seconds of
    it; the event handler gets `tip` failed; the room sees nothing; the
    plugin stops retrying; nothing is charged."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc, tip_timeout=4)
    room, key, perf = await B.live_room(ctx, 2)
    a_sub, b_sub = H.rand_id("dec"), H.rand_id("watch")
    await svc.fund(a_sub, 200)             # ~2 a second of watching, no 5000 tip
    await svc.fund(b_sub, 1000)
    A = await B.paying_viewer(ctx, room, a_sub, display="Dee")
    Bv = await B.paying_viewer(ctx, room, b_sub)

    tid = H.rand_id("big")
    expect_ok(await tip(A, amount=5000, message="too much", tip_id=tid), "tip_result", "tip above the balance")
    r = await final_tip_result(A, tid)
    check(r.get("status") == "declined" and r.get("reason") == "insufficient_funds", f"tip_result: {short(r)}")
    d = (await sink.wait("tip", lambda d: d.get("tip_id") == tid, 10))[0]
    check(d.get("status") == "declined" and d.get("reason") == "insufficient_funds" and d.get("amount") == 5000
          and d.get("viewer") == a_sub and d.get("room") == room, f"event handler tip: {short(d)}")

    await svc.faults(fail_next=10 ** 6, endpoint="tips")
    tid2 = H.rand_id("down")
    t0 = time.monotonic()
    expect_ok(await tip(A, amount=3, message="unreachable", tip_id=tid2), "tip_result", "tip during an outage")
    r = await final_tip_result(A, tid2, timeout=15)
    waited = time.monotonic() - t0
    check(r.get("status") == "failed" and r.get("reason") == "billing_unreachable", f"tip_result: {short(r)}")
    check(4.0 <= waited <= 4.0 + 5.0, f"'failed' came {waited:.1f}s after the tip (tip_timeout 4 s)")
    d = (await sink.wait("tip", lambda d: d.get("tip_id") == tid2, 10))[0]
    check(d.get("status") == "failed" and d.get("reason") == "billing_unreachable", f"event handler tip: {short(d)}")
    calls = await requests_seen(svc, "tips", key=tid2)
    gaps = [(b["received_ms"] - a["received_ms"]) / 1000 for a, b in zip(calls, calls[1:])]
    check(len(calls) >= 3 and all(c["status"] == 503 for c in calls) and all(g <= 2.0 + 1.0 for g in gaps),
          f"/v1/tips attempts with {tid2}: {len(calls)}, gaps {gaps} (want >= 3, at most ~2 s apart)")
    n_calls = len(calls)
    await svc.reset_faults()
    # settled as failed: not retried any more, even once the service answers
    tid3 = H.rand_id("after")
    expect_ok(await tip(A, amount=1, tip_id=tid3), "tip_result", "a tip after the outage")
    r = await final_tip_result(A, tid3)
    check(r.get("status") == "accepted", f"a tip after the outage: {short(r)}")
    check(len(await requests_seen(svc, "tips", key=tid2)) == n_calls,
          f"the failed tip {tid2} was sent again after it was reported failed")
    for p in (perf, A, Bv):
        shown = [e.data for e in p.handle.events if e.name == "tip" and e.data.get("tip_id") in (tid, tid2)]
        check(not shown, f"{p.label}: a declined or failed tip was shown: {shown}")
    check([x["ref"] for x in await B.tip_entries(svc, a_sub)] == [tid3],
          f"tipper's tip ledger: {short(await B.tip_entries(svc, a_sub))}")
