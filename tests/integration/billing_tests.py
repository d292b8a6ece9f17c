"""paystream integration tests of metering, billing and tips (docs/API.md
Tokens, Metering, tip, refresh, stats; docs/BILLING.md).

Each test starts its own Janus whose plugin config has a general category
pointing at the reference billing service (scripts/billing-service), with a
spool_dir in the test's Janus folder.  One billing service serves every test
of this module (started on first use, stopped by shutdown()); each test uses
fresh accounts and rooms, and clears the service's injected faults first.

Registered by suite.py (TESTS is appended to the suite's list).
"""

import asyncio
import functools
import os
import time

import harness as H
from harness import check, expect_error, expect_ok, short

TOKEN_SECRET = "it-token-secret-5d1f0c7e9a"
TOKEN_SECRET_PREVIOUS = "it-token-secret-previous-77b2"
BILLING_SECRET = "it-billing-secret-3c9e41"

RED = (200, 30, 30)
BLUE = (30, 30, 200)

TESTS = []

_svc = None


def test(timeout=120):
    """Every test here has its own Janus (own_server)."""
    def deco(fn):
        @functools.wraps(fn)
        async def wrapped(ctx):
            off = _svc.log_size() if _svc is not None else 0
            try:
                return await fn(ctx)
            except H.TestFailure as e:
                tail = _svc.log_since(off, 25) if _svc is not None else ""
                raise H.TestFailure(f"{e}\n--- billing-service log ---\n{tail}") from None
        TESTS.append((fn.__name__.removeprefix("test_"), wrapped, True, timeout))
        return fn
    return deco


def shutdown():
    global _svc
    if _svc is not None:
        _svc.stop()
        _svc = None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

async def service(ctx):
    """The module's billing service, with no fault pending."""
    global _svc
    if _svc is None or not _svc.alive():
        _svc = H.BillingService(os.path.join(ctx.runner.root, "billing"), [BILLING_SECRET])
        await asyncio.to_thread(_svc.start)
    await _svc.reset_faults()
    return _svc


async def billing_janus(ctx, svc, billing_secret=BILLING_SECRET, **extra):
    """A private Janus whose plugin bills to `svc` (spool in its folder)."""
    workdir = os.path.join(ctx.runner.root, f"{ctx.name}-janus")
    settings = dict(token_secret_previous=TOKEN_SECRET_PREVIOUS, billing_interval=1,
                    billing_timeout=2, billing_retry_max=2, instance=f"it-{ctx.name}")
    settings.update(extra)
    cfg = H.billing_plugin_config(svc.url, billing_secret, TOKEN_SECRET,
                                  os.path.join(workdir, "spool"), **settings)
    return await ctx.start_server(cfg, workdir)


def token(room, sub, role="viewer", ttl=600, secret=TOKEN_SECRET, drop=(), **claims):
    now = int(time.time())
    c = {"room": room, "sub": sub, "exp": now + ttl, "role": role}
    c.update(claims)
    for k in drop:
        c.pop(k, None)
    return H.make_jwt(secret, c)


async def paying_viewer(ctx, room, sub, label=None, display=None, **claims):
    v = await ctx.viewer(label or sub)
    ev = await v.join_live(room, token=token(room, sub, **claims), display=display)
    check(ev.data.get("viewer_id") == sub, f"{v.label}: viewer_id {ev.data.get('viewer_id')!r} "
          f"is not the token's sub {sub!r}: {short(ev.data)}")
    check(isinstance(ev.data.get("session"), str) and ev.data["session"],
          f"{v.label}: 'watching' with a token has no session: {short(ev.data)}")
    v.session = ev.data["session"]
    v.sub = sub
    return v


async def funded_viewer(ctx, svc, room, prefix, funds=100000, ticks=0, **claims):
    """A viewer watching `room` with a token for a fresh account (H.rand_id
    of prefix, its sub in v.sub) funded with `funds`; after `ticks` billed
    seconds when ticks > 0."""
    sub = H.rand_id(prefix)
    await svc.fund(sub, funds)
    v = await paying_viewer(ctx, room, sub, **claims)
    if ticks > 0:
        await wait_tick(v, ticks, 15)
    return v


async def wait_first_billed(svc, v, what="no tick reached the billing service"):
    """The billing service has applied at least one of v's ticks."""
    await poll(lambda: svc.session(v.session), lambda s: s["billed_seconds"] >= 1, 10, what)


async def check_usage_ledger(svc, account, amount, what=None):
    """account's usage ledger: each record id once, summing to -amount."""
    usage = await usage_entries(svc, account)
    check_refs_unique(usage, account)
    check(-sum(e["delta"] for e in usage) == amount,
          f"{what or account}: ledger sum {-sum(e['delta'] for e in usage)} != {amount}")
    return usage


def ticks(v):
    return [e for e in v.handle.events if e.name == "tick"]


def last_tick(v):
    t = ticks(v)
    return max(t, key=lambda e: e.data.get("seconds", -1)) if t else None


async def wait_tick(v, seconds, timeout):
    return await v.handle.wait_event(
        lambda e: e.name == "tick" and e.data.get("seconds", 0) >= seconds, timeout,
        what=f"a 'tick' with seconds >= {seconds}")


async def poll(fn, pred, timeout, what, interval=0.2):
    """Call fn() until pred(value); fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        val = await fn()
        try:
            ok = pred(val)
        except Exception:  # noqa: BLE001
            ok = False
        if ok:
            return val
        check(time.monotonic() < end, f"{what} (not within {timeout}s); last value: {short(val, 1500)}")
        await asyncio.sleep(interval)


async def plugin_billing_stats(ctx):
    data = await ctx.sync({"request": "stats"})
    expect_ok(data, "stats", "stats")
    check(isinstance(data.get("billing"), dict), f"stats without billing: {short(data)}")
    return data["billing"]


async def ended_session(svc, sid, timeout=15):
    return await poll(lambda: svc.session(sid),
                      lambda s: s is not None and s["reported_seconds"] is not None, timeout,
                      f"billing service: no session_end for session {sid}")


async def usage_entries(svc, account):
    entries = (await svc.ledger(account))["entries"]
    return [e for e in entries if e["kind"] == "usage"]


async def tip_entries(svc, account):
    entries = (await svc.ledger(account))["entries"]
    return [e for e in entries if e["kind"] == "tip"]


def check_refs_unique(entries, what):
    refs = [e["ref"] for e in entries]
    dup = sorted({r for r in refs if refs.count(r) > 1})
    check(not dup, f"{what}: record ids charged more than once: {dup}")


def viewer_entry(parts, viewer_id):
    for x in parts.get("viewers") or []:
        if x.get("viewer_id") == viewer_id:
            return x
    return None


async def leave(v):
    ev = await v.handle.request({"request": "leave"})
    expect_ok(ev, "left", f"{v.label} leave")
    return time.monotonic()


def stat(st, *path):
    node = st
    for p in path:
        if not isinstance(node, dict):
            return 0
        node = node.get(p, 0)
    return node or 0


async def live_room(ctx, price, **fields):
    room, key, _ = await ctx.create_room(price_per_second=price, currency="CRD", **fields)
    perf = await ctx.performer(color=RED)
    await perf.go_live(room, key, display="star")
    return room, key, perf


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@test(timeout=90)
async def test_billed_seconds(ctx):
    """~10 s of media at price 3 are billed 10 s +- 1, amount = seconds x
    price; ticks, ledger and session_end agree."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    room, key, perf = await live_room(ctx, 3)
    sub = H.rand_id("alice")
    await svc.fund(sub, 100000)
    v = await paying_viewer(ctx, room, sub)
    # media is sent from the viewer's webrtcup on: watch ~10 s from there (a
    # second in which media was sent is billed, so 9.6 s span 10 or 11 s)
    t0 = (await v.handle.wait_core("webrtcup", 10)).t
    await v.wait_frames(1, 15)
    while time.monotonic() - t0 < 9.6:         # frames keep flowing meanwhile
        await v.wait_frames(1, 5)
    ve = viewer_entry(await ctx.participants(room), sub)
    check(ve and ve.get("session") == v.session and isinstance(ve.get("seconds"), int)
          and ve["seconds"] >= 8 and ve.get("amount") == 3 * ve["seconds"]
          and ve.get("currency") == "CRD" and ve.get("stopped") is False,
          f"listparticipants viewer while watching: {short(ve)}")
    t_leave = await leave(v)
    media = t_leave - t0

    s = await ended_session(svc, v.session)
    billed, amount = s["billed_seconds"], s["billed_amount"]
    check(9 <= billed <= 11 and abs(billed - media) <= 1.5,
          f"billed {billed}s for {media:.1f}s of media (want 10 +- 1): {short(s)}")
    check(amount == 3 * billed, f"billed amount {amount} != {billed}s x 3: {short(s)}")
    check((s["reported_seconds"], s["reported_amount"]) == (billed, amount) and s["mismatch"] == 0,
          f"session_end totals differ from the ticks: {short(s)}")
    check(s["reason"] == "left" and s["viewer"] == sub and s["room"] == room
          and s["price_per_second"] == 3 and s["currency"] == "CRD",
          f"session row: {short(s)}")

    tk = ticks(v)
    secs = [e.data.get("seconds") for e in tk]
    check(secs and secs == sorted(secs) and len(set(secs)) == len(secs),
          f"tick seconds not increasing: {secs}")
    check(len(secs) >= secs[-1] - 1, f"with tick_notify 1, ticks are missing: {secs}")
    last = last_tick(v).data
    check(last.get("amount") == 3 * last.get("seconds") and last.get("currency") == "CRD",
          f"last tick: {short(last)}")
    check(0 <= billed - last["seconds"] <= 1,
          f"last tick told {last['seconds']}s, the ledger has {billed}s")

    usage = await usage_entries(svc, sub)
    check_refs_unique(usage, sub)
    check(-sum(e["delta"] for e in usage) == amount,
          f"viewer's usage ledger sum {sum(e['delta'] for e in usage)} != -{amount}")
    check(all(e["ref"].startswith(v.session + ":") for e in usage), f"ledger refs: {short(usage)}")
    room_usage = await usage_entries(svc, "room:" + room)
    check(sum(e["delta"] for e in room_usage) == amount,
          f"room's usage ledger sum {sum(e['delta'] for e in room_usage)} != {amount}")
    check(await svc.balance(sub) == 100000 - amount, "viewer balance")

    # the performer's earnings: once the viewer left, the show's amount is
    # what the viewer was billed
    earn = [e.data for e in perf.handle.events if e.name == "earnings"]
    check(len(earn) >= 5 and any(e.get("paying_viewers") == 1 for e in earn),
          f"performer got {len(earn)} 'earnings' events in ~10 s: {short(earn[-3:])}")
    e = (await perf.handle.wait_event(
        lambda e: e.name == "earnings" and e.t > t_leave + 0.5 and e.data.get("paying_viewers") == 0,
        5, what="'earnings' after the viewer left")).data
    check(e.get("amount") == amount and e.get("currency") == "CRD",
          f"earnings after the viewer left: {short(e)}; the viewer was billed {amount}")


@test(timeout=90)
async def test_currency_edit_mid_session(ctx):
    """An edit of price and currency applies to sessions that start after it:
    a running session keeps billing in its own (ticks, records,
    listparticipants), and the performer's earnings sum each currency
    apart instead of adding them up."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    room, key, perf = await live_room(ctx, 3)
    old_sub, new_sub = H.rand_id("old"), H.rand_id("new")
    await svc.fund(old_sub, 100000)
    await svc.fund(new_sub, 100000)
    old = await paying_viewer(ctx, room, old_sub)
    await wait_tick(old, 2, 15)
    expect_ok(await ctx.sync({"request": "edit", "room": room, "new_price_per_second": 5,
                              "new_currency": "GEM"}), "edited", "edit price and currency")
    new = await paying_viewer(ctx, room, new_sub)
    s_new = (await wait_tick(new, 2, 15)).data
    check(s_new.get("currency") == "GEM" and s_new.get("amount") == 5 * s_new["seconds"],
          f"a session started after the edit: {short(s_new)}")
    s_old = (await wait_tick(old, last_tick(old).data["seconds"] + 1, 10)).data
    check(s_old.get("currency") == "CRD" and s_old.get("amount") == 3 * s_old["seconds"],
          f"the session started before the edit: {short(s_old)}")
    parts = await ctx.participants(room)
    eo, en = viewer_entry(parts, old_sub), viewer_entry(parts, new_sub)
    check(eo and eo.get("currency") == "CRD" and eo.get("amount") == 3 * eo.get("seconds", -1),
          f"listparticipants, the old session: {short(eo)}")
    check(en and en.get("currency") == "GEM" and en.get("amount") == 5 * en.get("seconds", -1),
          f"listparticipants, the new session: {short(en)}")
    e = (await perf.handle.wait_event(
        lambda e: e.name == "earnings" and e.data.get("paying_viewers") == 2 and e.data.get("amount", 0) >= 10,
        10, what="'earnings' with both viewers")).data
    others = e.get("other_currencies") or {}
    check(e.get("currency") == "GEM" and e["amount"] % 5 == 0 and others.get("CRD", 0) >= 6
          and others["CRD"] % 3 == 0 and set(others) == {"CRD"},
          f"earnings after a currency edit: {short(e)}")
    await leave(old)
    await leave(new)
    so, sn = await ended_session(svc, old.session), await ended_session(svc, new.session)
    check((so["currency"], so["price_per_second"]) == ("CRD", 3) and so["billed_amount"] == 3 * so["billed_seconds"],
          f"billing service, the old session: {short(so)}")
    check((sn["currency"], sn["price_per_second"]) == ("GEM", 5) and sn["billed_amount"] == 5 * sn["billed_seconds"],
          f"billing service, the new session: {short(sn)}")


@test(timeout=120)
async def test_not_billed_paused_offline(ctx):
    """Seconds paused and seconds with the performer offline are not billed.
    A second in which any media was sent is billed whatever the viewer's
    state at the tick (docs/API.md, Metering), so each of the three spans of
    media may touch one more second at each end: billed <= watched + 6."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    room, key, perf = await live_room(ctx, 2)
    sub = H.rand_id("bob")
    await svc.fund(sub, 100000)
    v = await paying_viewer(ctx, room, sub)
    await v.wait_frames(1, 15)
    t_start = v.video_frames[0][0]
    await wait_tick(v, 2, 10)

    expect_ok(await v.handle.request({"request": "pause"}), "paused", "pause")
    t_p0 = time.monotonic()
    await v.wait_quiet(0.6, 4.0)
    await v.assert_flat(5.5)
    expect_ok(await v.handle.request({"request": "resume"}), "resumed", "resume")
    t_p1 = time.monotonic()
    await v.wait_frames(15, 10)

    ev = await perf.handle.request({"request": "unpublish"})
    expect_ok(ev, "unpublished", "unpublish")
    t_o0 = time.monotonic()
    await v.handle.wait_plugin("offline", 10)
    await v.wait_quiet(0.6, 4.0)
    await v.assert_flat(5.5)
    perf2 = await ctx.performer("performer2", BLUE)
    await perf2.go_live(room, key, display="star2")
    t_o1 = time.monotonic()
    live = await v.handle.wait_plugin("live", 15)
    if live.jsep is not None:
        await v.answer(live.jsep)
    await v.wait_frames(15, 15)
    t_back = time.monotonic()
    while time.monotonic() - t_back < 3.0:      # some more seconds of media
        await v.wait_frames(1, 5)
    t_end = await leave(v)

    for (a, b, what) in ((t_p0, t_p1, "paused"), (t_o0, t_o1, "offline")):
        during = [e.data for e in ticks(v) if a + 1.5 < e.t < b]
        check(not during, f"'tick' events while {what}: {during}")
    s = await ended_session(svc, v.session)
    billed = s["billed_seconds"]
    wall = t_end - t_start
    paused, offline = t_p1 - t_p0, t_o1 - t_o0
    expected = wall - paused - offline
    info = (f"billed {billed}s; wall {wall:.1f}s, paused {paused:.1f}s, offline {offline:.1f}s, "
            f"watched with media ~{expected:.1f}s; spans from the first frame: paused "
            f"{t_p0 - t_start:.1f}-{t_p1 - t_start:.1f}, offline {t_o0 - t_start:.1f}-{t_o1 - t_start:.1f}, "
            f"left {wall:.1f}; ticks at {[round(e.t - t_start, 1) for e in ticks(v)]}; session {short(s)}")
    # paused + offline >= 12 s, of which at most 4 edge seconds may be billed
    check(billed < wall - 5, "paused/offline time was billed: " + info)
    # (each of the 3 media spans may start and end inside a billed second)
    check(billed <= expected + 6, "more seconds billed than watched with media: " + info)
    check(billed >= expected - 4, "far fewer seconds billed than watched with media: " + info)
    check(s["billed_amount"] == 2 * billed and s["reported_seconds"] == billed
          and s["mismatch"] == 0, f"session totals: {short(s)}")
    usage = await usage_entries(svc, sub)
    check(-sum(e["delta"] for e in usage) == s["billed_amount"], "ledger sum != billed amount")


@test(timeout=150)
async def test_outage_exactly_once(ctx):
    """A 20 s billing outage (dropped connections, 503s, then lost 2xx
    replies): after recovery every record is charged exactly once."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    room, key, perf = await live_room(ctx, 2)
    sub = H.rand_id("carol")
    await svc.fund(sub, 100000)
    v = await paying_viewer(ctx, room, sub)
    await wait_tick(v, 2, 15)
    await poll(lambda: svc.session(v.session), lambda s: s["billed_seconds"] >= 1, 10,
               "no tick reached the billing service before the outage")
    b = await plugin_billing_stats(ctx)
    check(b.get("enabled") is True and b.get("consecutive_failures") == 0
          and isinstance(b.get("last_success"), int), f"plugin stats before the outage: {short(b)}")
    st0 = await svc.stats()

    await svc.faults(drop_next=2, fail_next=10 ** 6, apply_then_fail_next=2, endpoint="usage")
    t_out = time.monotonic()
    await poll(lambda: plugin_billing_stats(ctx), lambda b: b["consecutive_failures"] > 0, 10,
               "stats: consecutive_failures stayed 0 during the outage")
    s_out = last_tick(v).data["seconds"]
    before = (await svc.session(v.session))["billed_seconds"]
    await wait_tick(v, s_out + 18, 30)          # metering goes on: ~20 s of outage
    b = await plugin_billing_stats(ctx)
    check(b["consecutive_failures"] >= 2 and b["queue_depth"] > 0,
          f"stats after {time.monotonic() - t_out:.0f}s of outage: {short(b)}")
    during = (await svc.session(v.session))["billed_seconds"]
    check(during <= before + 2, f"the service applied {during - before}s during the outage")

    await svc.faults(fail_next=0)       # the 2 lost replies come next, then all is well
    b = await poll(lambda: plugin_billing_stats(ctx),
                   lambda b: b["consecutive_failures"] == 0 and b["queue_depth"] == 0, 25,
                   "stats: the plugin did not recover (consecutive_failures/queue_depth)")
    check(isinstance(b.get("last_success"), int), f"stats after recovery: {short(b)}")
    f = (await svc.get("/admin/faults"))["faults"]
    check(f["apply_then_fail_next"] == 0 and f["drop_next"] == 0, f"faults left: {f}")
    await v.wait_frames(5, 10)
    t_told = last_tick(v).data["seconds"]
    await leave(v)

    s = await ended_session(svc, v.session)
    check(s["reported_seconds"] >= t_told, f"session_end {short(s)} below the last tick {t_told}")
    check(s["reported_seconds"] - t_told <= 2, f"session_end {short(s)}; last tick {t_told}")
    check((s["billed_seconds"], s["billed_amount"]) == (s["reported_seconds"], s["reported_amount"])
          and s["mismatch"] == 0,
          f"ticks applied != the plugin's final totals (lost or double records): {short(s)}")
    check(s["billed_amount"] == 2 * s["billed_seconds"], f"amount: {short(s)}")
    usage = await usage_entries(svc, sub)
    check_refs_unique(usage, sub)
    check(-sum(e["delta"] for e in usage) == s["reported_amount"],
          f"ledger sum {-sum(e['delta'] for e in usage)} != the plugin's total {s['reported_amount']}")
    st1 = await svc.stats()
    d = lambda *p: stat(st1, *p) - stat(st0, *p)  # noqa: E731
    check(d("faults", "dropped") == 2 and d("faults", "applied_then_failed") == 2
          and d("faults", "failed") >= 3, f"faults seen: {st1['faults']} (before {st0['faults']})")
    check(d("duplicate_requests", "usage") >= 1,
          f"no repeated usage request after lost replies: {st1['duplicate_requests']}")
    check(d("conflicts") == 0, f"conflicts (a batch re-sent with other content): {d('conflicts')}")
    check(st1["ledger"]["consistent"] and stat(st1, "mismatches") == stat(st0, "mismatches"),
          f"ledger: {st1['ledger']}, mismatches {st1.get('mismatches')}")


@test(timeout=150)
async def test_kill9_replay(ctx):
    """Janus killed with SIGKILL while records are spooled (service failing);
    after a restart with the same spool they are delivered once each."""
    svc = await service(ctx)
    srv = await billing_janus(ctx, svc)
    room, key, perf = await live_room(ctx, 2)
    sub = H.rand_id("dave")
    await svc.fund(sub, 100000)
    v = await paying_viewer(ctx, room, sub)
    sid = v.session
    await wait_tick(v, 3, 15)
    await poll(lambda: svc.session(sid), lambda s: s["billed_seconds"] >= 2, 10,
               "ticks did not reach the billing service before the outage")
    await svc.faults(fail_next=10 ** 6, endpoint="usage")
    await poll(lambda: plugin_billing_stats(ctx), lambda b: b["consecutive_failures"] > 0, 10,
               "stats: consecutive_failures stayed 0")
    s_k = last_tick(v).data["seconds"]
    await wait_tick(v, s_k + 4, 10)
    b = await plugin_billing_stats(ctx)
    check(b["queue_depth"] > 0 and b["spool_bytes"] > 0, f"nothing spooled during the outage: {short(b)}")
    told = last_tick(v).data["seconds"]
    delivered = (await svc.session(sid))["billed_seconds"]
    check(delivered < told, f"service has {delivered}s, viewer told {told}s: nothing left spooled")
    st0 = await svc.stats()

    rc = srv.kill9()
    check(rc == -9, f"janus exit {rc} after SIGKILL")
    await ctx.cleanup()
    spool = os.path.join(srv.workdir, "spool")
    files = os.listdir(spool) if os.path.isdir(spool) else []
    check(files, f"spool_dir {spool} is empty after the kill")
    await asyncio.to_thread(srv.start)
    await svc.reset_faults()

    s = await poll(lambda: svc.session(sid), lambda s: s["billed_seconds"] >= told - 2, 25,
                   f"spooled ticks not delivered after the restart (viewer was told {told}s)")
    await poll(lambda: plugin_billing_stats(ctx),
               lambda b: b["queue_depth"] == 0 and b["consecutive_failures"] == 0, 20,
               "the restarted plugin did not empty its spool")
    s = await svc.session(sid)
    billed = s["billed_seconds"]
    check(told - 2 <= billed <= told,
          f"billed {billed}s after the replay; the viewer was told {told}s: {short(s)}")
    check(s["billed_amount"] == 2 * billed, f"amount: {short(s)}")
    usage = await usage_entries(svc, sub)
    check_refs_unique(usage, sub)
    check(all(e["ref"].startswith(sid + ":") for e in usage),
          f"ledger refs not the session's original record ids: {[e['ref'] for e in usage]}")
    check(-sum(e["delta"] for e in usage) == s["billed_amount"],
          f"ledger sum {-sum(e['delta'] for e in usage)} != billed {s['billed_amount']}")
    st1 = await svc.stats()
    check(stat(st1, "conflicts") == stat(st0, "conflicts"),
          f"a replayed batch had other content than the original (409): {st1['conflicts']}")
    check(st1["ledger"]["consistent"], f"ledger: {st1['ledger']}")
    check(srv.alive(), srv.death_reason() or "janus died after the restart")


@test(timeout=90)
async def test_out_of_funds(ctx):
    """A viewer funded for ~5 s is stopped (insufficient_funds), its media
    stops within 2 s, resume is refused with 462."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    price = 3
    room, key, perf = await live_room(ctx, price)
    sub = H.rand_id("erin")
    await svc.fund(sub, 5 * price)
    v = await paying_viewer(ctx, room, sub)
    await v.wait_frames(5, 15)
    ev = await v.handle.wait_plugin("stopped", 20)
    t_stop = ev.t
    d = ev.data
    check(d.get("reason") == "insufficient_funds" and d.get("room") == room,
          f"stopped event: {short(d)}")
    check(isinstance(d.get("seconds"), int) and 4 <= d["seconds"] <= 9
          and d.get("amount") == price * d["seconds"] and d.get("currency") == "CRD",
          f"stopped totals (funded for 5 s): {short(d)}")
    await v.wait_quiet(0.5, 3.0)
    last_frame = v.video_frames[-1][0] if v.video_frames else 0
    check(last_frame <= t_stop + 2.0,
          f"frames went on {last_frame - t_stop:.2f}s after the 'stopped' event")
    await v.assert_flat(2.0)
    ev = await v.handle.request({"request": "resume"})
    expect_error(ev, 462, "resume after stopped")
    check(not [e for e in ticks(v) if e.data.get("seconds", 0) > d["seconds"]],
          f"ticks beyond the stopped totals: {[e.data for e in ticks(v)]}")
    ve = viewer_entry(await ctx.participants(room), sub)
    check(ve and ve.get("stopped") is True and ve.get("seconds") == d["seconds"],
          f"listparticipants after stop: {short(ve)}")
    s = await poll(lambda: svc.session(v.session), lambda s: s["billed_seconds"] == d["seconds"], 10,
                   f"the service did not get the final tick ({d['seconds']}s)")
    bal = await svc.balance(sub)
    check(bal >= -3 * price, f"balance went to {bal} (more than ~2 intervals below zero)")
    check(bal == 5 * price - s["billed_amount"], f"balance {bal} vs billed {short(s)}")


@test(timeout=90)
async def test_token_expires_mid_session(ctx):
    """A token that expires while its viewer watches stops the session
    (token_expired) from the ticker's walk: media stops within 2 s, the
    seconds before it are billed once, and a refresh does not resume it."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    price = 2
    room, key, perf = await live_room(ctx, price)
    sub = H.rand_id("ivy")
    await svc.fund(sub, 100000)
    # Accepted at watch thanks to the 30 s leeway, expired ~6 s later.
    v = await paying_viewer(ctx, room, sub, ttl=-24)
    await v.wait_frames(1, 15)
    ev = await v.handle.wait_plugin("stopped", 20)
    d = ev.data
    check(d.get("reason") == "token_expired" and d.get("room") == room, f"stopped event: {short(d)}")
    check(isinstance(d.get("seconds"), int) and 1 <= d["seconds"] <= 10
          and d.get("amount") == price * d["seconds"], f"stopped totals (token valid ~6 s): {short(d)}")
    await v.wait_quiet(0.5, 3.0)
    check(v.video_frames[-1][0] <= ev.t + 2.0, "frames went on > 2 s after 'stopped'")
    await v.assert_flat(1.5)
    r = await v.handle.request({"request": "refresh", "token": token(room, sub)})
    r = expect_ok(r, "refreshed", "refresh after token_expired")
    check(r.get("resumed") is not True, f"a token_expired session resumed on refresh: {short(r)}")
    await v.assert_flat(1.5)
    await leave(v)
    s = await ended_session(svc, v.session)
    check(s["billed_seconds"] == d["seconds"] and s["billed_amount"] == price * d["seconds"],
          f"billed {short(s)} against the stopped totals {short(d)}")


@test(timeout=90)
async def test_budget_exhausted_refresh(ctx):
    """A token budget of 4 x price stops after 4 s (budget_exhausted);
    refresh with a bigger budget resumes media."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    price = 2
    room, key, perf = await live_room(ctx, price)
    sub = H.rand_id("frank")
    await svc.fund(sub, 100000)
    v = await paying_viewer(ctx, room, sub, budget=4 * price)
    await v.wait_frames(1, 15)
    t0 = v.video_frames[0][0]
    ev = await v.handle.wait_plugin("stopped", 15)
    d = ev.data
    check(d.get("reason") == "budget_exhausted" and d.get("seconds") == 4
          and d.get("amount") == 4 * price, f"stopped event: {short(d)}")
    check(ev.t - t0 < 8, f"budget of 4 s stopped after {ev.t - t0:.1f}s")
    await v.wait_quiet(0.5, 3.0)
    check(v.video_frames[-1][0] <= ev.t + 2.0, "frames went on > 2 s after 'stopped'")
    await v.assert_flat(1.5)
    expect_error(await v.handle.request({"request": "resume"}), 462, "resume after budget_exhausted")

    n0 = v.nframes
    exp = int(time.time()) + 900
    tok = token(room, sub, budget=8 * price, exp=exp)
    ev = await v.handle.request({"request": "refresh", "token": tok})
    r = expect_ok(ev, "refreshed", "refresh")
    check(r.get("resumed") is True and r.get("budget") == 8 * price and r.get("exp") == exp,
          f"refreshed: {short(r)}")
    await v.wait_frames(20, 10)
    check(v.nframes > n0, "no frames after refresh")
    ev2 = await v.handle.wait_plugin("stopped", 15)
    check(ev2.data.get("reason") == "budget_exhausted" and ev2.data.get("seconds") == 8
          and ev2.data.get("amount") == 8 * price, f"second stopped event: {short(ev2.data)}")
    await leave(v)
    s = await ended_session(svc, v.session)
    check(s["billed_seconds"] == 8 and s["billed_amount"] == 8 * price
          and s["reported_amount"] == 8 * price, f"session: {short(s)}")


@test(timeout=120)
async def test_tips(ctx):
    """Accepted, declined, retried through an outage, repeated, HTML-ish
    message verbatim, min/max (460), rate limit (461)."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    room, key, perf = await live_room(ctx, 1, min_tip=5, max_tip=500)
    a_sub, b_sub, c_sub = H.rand_id("ann"), H.rand_id("ben"), H.rand_id("cat")
    await svc.fund(a_sub, 1000)
    await svc.fund(b_sub, 1000)
    await svc.fund(c_sub, 60)
    A = await paying_viewer(ctx, room, a_sub, display="Alice")
    B = await paying_viewer(ctx, room, b_sub, display="Bob")
    C = await paying_viewer(ctx, room, c_sub, display="Carol")
    everyone = [perf, A, B, C]
    room_acc = "room:" + room

    async def tip(v, what, **body):
        ev = await v.handle.request(dict({"request": "tip"}, **body))
        return ev

    async def final_result(v, tip_id, timeout=15):
        return await v.handle.wait_event(
            lambda e: e.name == "tip_result" and e.data.get("tip_id") == tip_id
            and e.data.get("status") != "pending", timeout, what=f"final tip_result of {tip_id}")

    def shown(p, tip_id):
        return [e.data for e in p.handle.events if e.name == "tip" and e.data.get("tip_id") == tip_id]

    # accepted, with a message that looks like HTML
    msg = "<img src=x onerror=alert(1)>"
    t1 = H.rand_id("tip")
    ev = await tip(A, "accepted", amount=25, message=msg, tip_id=t1)
    r = expect_ok(ev, "tip_result", "tip")
    check(r.get("tip_id") == t1 and r.get("status") == "pending", f"tip reply: {short(r)}")
    r = (await final_result(A, t1)).data
    check(r.get("status") == "accepted", f"tip_result: {short(r)}")
    for p in everyone:
        e = (await p.handle.wait_event(lambda e: e.name == "tip" and e.data.get("tip_id") == t1, 10,
                                       what=f"'tip' {t1}")).data
        check(e.get("amount") == 25 and e.get("message") == msg and e.get("display") == "Alice"
              and e.get("currency") == "CRD" and e.get("room") == room,
              f"{p.label}: tip event {short(e)} (message must be verbatim {msg!r})")
    te = await tip_entries(svc, a_sub)
    check([(x["ref"], x["delta"]) for x in te] == [(t1, -25)], f"tipper's tip ledger: {short(te)}")
    check([(x["ref"], x["delta"]) for x in await tip_entries(svc, room_acc)] == [(t1, 25)],
          "room's tip ledger")
    st = [x for x in await svc.tips() if x["tip_id"] == t1]
    check(len(st) == 1 and st[0]["status"] == "accepted" and st[0]["message"] == msg,
          f"service tips: {short(st)}")

    # the same tip_id again: answered with the final status, never charged or shown again
    ev = await tip(A, "repeat", amount=25, message=msg, tip_id=t1)
    r = expect_ok(ev, "tip_result", "repeated tip_id")
    check(r.get("tip_id") == t1 and r.get("status") == "accepted"
          and r.get("reason") == "repeated_tip_id", f"repeated tip_id answer: {short(r)}")

    # declined: Carol has less than the tip
    t3 = H.rand_id("tip")
    r = expect_ok(await tip(C, "declined", amount=100, tip_id=t3), "tip_result", "tip 100")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    r = (await final_result(C, t3)).data
    check(r.get("status") == "declined" and r.get("reason") == "insufficient_funds",
          f"declined tip_result: {short(r)}")

    # retried through an outage of the tips endpoint
    st0 = await svc.stats()
    await svc.faults(fail_next=3, endpoint="tips")
    t2 = H.rand_id("tip")
    r = expect_ok(await tip(B, "outage", amount=40, message="thanks!", tip_id=t2), "tip_result", "tip")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    # the same tip_id while it is in flight: pending (or 460), never sent twice
    ev = await tip(B, "in flight", amount=40, message="thanks!", tip_id=t2)
    if ev.name == "error":
        expect_error(ev, 460, "tip_id repeated while in flight")
    else:
        r = expect_ok(ev, "tip_result", "tip_id repeated while in flight")
        check(r.get("tip_id") == t2 and r.get("reason") == "repeated_tip_id"
              and r.get("status") in ("pending", "accepted"), f"repeat in flight: {short(r)}")
    r = (await final_result(B, t2, 25)).data
    check(r.get("status") == "accepted", f"tip through an outage: {short(r)}")
    for p in everyone:
        await p.handle.wait_event(lambda e: e.name == "tip" and e.data.get("tip_id") == t2, 10,
                                  what=f"'tip' {t2}")
    st1 = await svc.stats()
    check(stat(st1, "faults", "failed") - stat(st0, "faults", "failed") == 3,
          f"the tip did not go through the 3 injected failures: {st1['faults']}")

    # limits (460)
    for body, what in (({"amount": 4}, "below min_tip"), ({"amount": 501}, "above max_tip"),
                       ({"amount": 10, "message": "x" * 201}, "message of 201 characters")):
        expect_error(await tip(A, what, **body), 460, f"tip {what}")

    # a window in which nothing more may be shown: the declined and the retried tip
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        for p in everyone:
            check(not shown(p, t3), f"{p.label}: a declined tip was shown: {shown(p, t3)}")
            check(len(shown(p, t2)) == 1 and len(shown(p, t1)) == 1,
                  f"{p.label}: tips shown {len(shown(p, t1))}x/{len(shown(p, t2))}x, want once")
        await asyncio.sleep(0.1)
    check(not await tip_entries(svc, c_sub), "the declined tip moved money")
    check([(x["ref"], x["delta"]) for x in await tip_entries(svc, b_sub)] == [(t2, -40)],
          f"tip through the outage charged: {short(await tip_entries(svc, b_sub))}")
    check(sorted(x["ref"] for x in await tip_entries(svc, room_acc)) == sorted([t1, t2]),
          "room's tip ledger after the outage")
    tips = {x["tip_id"]: x for x in await svc.tips()}
    check(tips.get(t3, {}).get("status") == "declined", f"service: {short(tips.get(t3))}")

    # rate limit: 3 quick tips then 461 (Bob's last tip is > 1 s old)
    quick = [H.rand_id("tip") for _ in range(4)]
    for tid in quick[:3]:
        r = expect_ok(await tip(B, "quick", amount=5, tip_id=tid), "tip_result", "quick tip")
        check(r.get("status") == "pending", f"quick tip: {short(r)}")
    expect_error(await tip(B, "4th quick", amount=5, tip_id=quick[3]), 461, "4th tip in a row")
    for tid in quick[:3]:
        check((await final_result(B, tid)).data.get("status") == "accepted", "quick tip result")
    check(quick[3] not in {x["tip_id"] for x in await svc.tips()}, "the rate-limited tip was sent")
    st2 = await svc.stats()
    check(st2["ledger"]["consistent"], f"ledger: {st2['ledger']}")


@test(timeout=90)
async def test_token_rejections(ctx):
    """457 without a token; 458 for every bad token; the previous secret is
    accepted; publish with a publisher token, not with a viewer token."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    room, key, _ = await ctx.create_room(price_per_second=2, currency="CRD")
    other, _, _ = await ctx.create_room(price_per_second=2)
    sub = H.rand_id("gus")
    now = int(time.time())
    claims = {"room": room, "sub": sub, "exp": now + 600, "role": "viewer"}
    h = await ctx.handle()
    expect_error(await h.request({"request": "watch", "room": room}), 457, "watch a priced room without token")
    cases = [
        ("expired", token(room, sub, exp=now - 120), "token_expired"),
        ("not yet valid", token(room, sub, nbf=now + 600), "not_yet_valid"),
        ("wrong room", token(other, sub), "wrong_room"),
        ("bad signature", token(room, sub, secret="not-the-secret"), "bad_signature"),
        ("alg none", H.make_jwt("", claims, alg="none"), "unsupported_alg"),
        ("alg HS512 header", H.make_jwt(TOKEN_SECRET, claims, header={"alg": "HS512", "typ": "JWT"}),
         "unsupported_alg"),
        ("malformed (one part)", "garbage", "malformed"),
        ("malformed (not base64 json)", "a.b.c", "malformed"),
        ("missing sub", token(room, sub, drop=("sub",)), "missing_claim"),
        ("missing exp", token(room, sub, drop=("exp",)), "missing_claim"),
        ("missing room", token(room, sub, drop=("room",)), "missing_claim"),
        ("publisher role", token(room, sub, role="publisher"), "wrong_role"),
    ]
    for what, tok, reason in cases:
        ev = await h.request({"request": "watch", "room": room, "token": tok})
        expect_error(ev, 458, f"watch with a token: {what}")
        check(reason in ev.data.get("error", ""),
              f"watch with a token ({what}): error text {ev.data.get('error')!r} lacks {reason!r}")
    vs = (await ctx.participants(room)).get("viewers") or []
    check(vs == [], f"refused viewers are in the room: {short(vs)}")

    # the previous secret (rotation) and nbf within the 30 s skew are accepted
    ev = await h.request({"request": "watch", "room": room,
                          "token": token(room, sub, secret=TOKEN_SECRET_PREVIOUS)})
    d = expect_ok(ev, "watching", "watch with a token signed with token_secret_previous")
    check(d.get("viewer_id") == sub and d.get("session"), f"watching: {short(d)}")
    expect_ok(await h.request({"request": "leave"}), "left", "leave")
    h2 = await ctx.handle()
    ev = await h2.request({"request": "watch", "room": room, "token": token(room, sub + "x", nbf=now + 10)})
    expect_ok(ev, "watching", "watch with nbf 10 s ahead (within the skew)")

    # publish: a viewer token or another room's publisher token is refused
    p1 = await ctx.performer("p-viewer-token")
    ev = await p1.publish(room, None, extra={"token": token(room, "perf")})
    expect_error(ev, 458, "publish with a viewer token")
    p2 = await ctx.performer("p-other-room")
    ev = await p2.publish(room, None, extra={"token": token(other, "perf", role="publisher")})
    expect_error(ev, 458, "publish with another room's publisher token")
    p3 = await ctx.performer("p-publisher-token")
    ev = await p3.publish(room, None, extra={"token": token(room, "perf", role="publisher")})
    expect_ok(ev, "published", "publish with a publisher token")
    await p3.wait_connected()
    hal = H.rand_id("hal")
    await svc.fund(hal, 10000)
    v = await paying_viewer(ctx, room, hal)
    await v.wait_frames(15, 15)
    check(H.color_close(v.recent_color(), RED), f"viewer colour {v.recent_color()}")


@test(timeout=90)
async def test_free_room(ctx):
    """A free room works without a token and makes no usage records."""
    svc = await service(ctx)
    await billing_janus(ctx, svc)
    st0 = await svc.stats()
    room, key, _ = await ctx.create_room(price_per_second=0)
    perf = await ctx.performer()
    await perf.go_live(room, key)
    v1 = await ctx.viewer("anon")
    ev = await v1.join_live(room)
    check(ev.data.get("price_per_second") == 0, f"watching: {short(ev.data)}")
    sub = H.rand_id("ivy")
    v2 = await ctx.viewer("with-token")
    await v2.join_live(room, token=token(room, sub))
    await asyncio.gather(v1.wait_frames(60, 15), v2.wait_frames(60, 15))
    expect_error(await v1.handle.request({"request": "tip", "amount": 5}), 457, "tip without a token")
    await leave(v1)
    await leave(v2)
    # a window of two billing intervals in which nothing may be sent
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        b = await plugin_billing_stats(ctx)
        check(b["queue_depth"] == 0, f"records queued for a free room: {short(b)}")
        await asyncio.sleep(0.25)
    for v in (v1, v2):
        check(not [e for e in v.handle.events if e.name in ("tick", "stopped")],
              f"{v.label}: metering events in a free room: {v.handle.events}")
    sessions = [s for s in (await svc.get("/admin/sessions"))["sessions"] if s["room"] == room]
    check(not sessions, f"billing sessions for a free room: {short(sessions)}")
    st1 = await svc.stats()
    check(stat(st1, "records_applied") == stat(st0, "records_applied"),
          f"records applied for a free room: {st1['records_applied'] - st0['records_applied']}")


@test(timeout=90)
async def test_signatures_verified(ctx):
    """No signature failure from the correctly configured plugins; with a
    wrong billing_secret every call gets 401, is retried, nothing applied."""
    svc = await service(ctx)
    st0 = await svc.stats()
    check(st0["signature_failures"] == 0,
          f"signature failures from correctly configured plugins: {st0['signature_failures']}")
    check(st0["ledger"]["consistent"] and st0["conflicts"] == 0 and st0["mismatches"] == 0
          and st0["bad_requests"] == 0,
          f"service state after the suite's traffic: {short(st0, 2000)}")
    await billing_janus(ctx, svc, billing_secret="a-wrong-billing-secret", tip_timeout=4)
    room, key, perf = await live_room(ctx, 2)
    sub = H.rand_id("jay")
    await svc.fund(sub, 1000)
    v = await paying_viewer(ctx, room, sub)
    await v.wait_frames(10, 15)
    b = await poll(lambda: plugin_billing_stats(ctx), lambda b: b["consecutive_failures"] >= 2, 15,
                   "stats: the plugin does not retry after 401")
    check(b["queue_depth"] > 0, f"stats: {short(b)}")
    tid = H.rand_id("tip")
    r = expect_ok(await v.handle.request({"request": "tip", "amount": 5, "tip_id": tid}),
                  "tip_result", "tip")
    check(r.get("status") == "pending", f"tip reply: {short(r)}")
    r = (await v.handle.wait_event(lambda e: e.name == "tip_result" and e.data.get("tip_id") == tid
                                   and e.data.get("status") != "pending", 15,
                                   what="tip_result failed")).data
    check(r.get("status") == "failed", f"a tip the service never accepted: {short(r)}")
    check(not [e for e in perf.handle.events if e.name == "tip"], "a failed tip was shown")
    st1 = await svc.stats()
    check(stat(st1, "signature_failures") - st0["signature_failures"] >= 3
          and stat(st1, "requests", "usage", "401") - stat(st0, "requests", "usage", "401") >= 2,
          f"service stats: {short(st1, 2000)}")
    check(stat(st1, "records_applied") == stat(st0, "records_applied"),
          f"records applied from a plugin with a wrong secret: {short(st1, 2000)}")
    check(await svc.session(v.session) is None, "a session was opened from unsigned calls")
    check(not (await svc.ledger(sub))["entries"][1:], f"ledger moved: {(await svc.ledger(sub))['entries']}")
    check(await svc.balance(sub) == 1000, "balance changed")
    check(not [x for x in await svc.tips() if x["tip_id"] == tid], "the tip was recorded")
