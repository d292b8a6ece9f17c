"""paystream integration tests of how a paying viewer's session ends or goes
on (docs/API.md: kick, destroy, refresh, tick_notify, the `stopped`, `tick`
and `earnings` events, the event handler events; docs/BILLING.md: the
session_end record and its reason).

Each test has its own Janus billing to billing_tests.py's reference service,
with the HTTP event handler posting to a sink of the test (events_tests.py's
decorator and events_janus), and reuses billing_tests.py's helpers.
Registered by suite.py (TESTS is appended to the suite's list).
"""

import math
import time

import billing_tests as B
import events_tests as E
import harness as H
from harness import check, expect_ok, short

TESTS = []


def test(timeout=120):
    return E.test(timeout=timeout, registry=TESTS)


def of_session(v):
    return lambda d: d.get("session") == v.session


async def check_ended(ctx, svc, room, v, reason, price, stopped=None):
    """The billing service's session of v ended with `reason`, billed exactly
    its session_end totals (and the `stopped` totals when given); the event
    handler's session_ended says the same. Returns the service's session."""
    sink = ctx.sink
    s = await B.ended_session(svc, v.session)
    check(s["reason"] == reason, f"service session_end reason {s['reason']!r}, want {reason!r}: {short(s)}")
    check((s["billed_seconds"], s["billed_amount"]) == (s["reported_seconds"], s["reported_amount"])
          and s["mismatch"] == 0,
          f"the ticks applied differ from the session_end totals: {short(s)}")
    check(s["billed_amount"] == price * s["billed_seconds"] and s["billed_seconds"] >= 1
          and s["viewer"] == v.sub and s["room"] == room and s["currency"] == "CRD",
          f"service session: {short(s)}")
    if stopped is not None:
        check(s["billed_seconds"] == stopped["seconds"] and s["billed_amount"] == stopped["amount"],
              f"billed {short(s)} against the stopped totals {short(stopped)}")
    d = (await sink.wait("session_ended", of_session(v), 10))[0]
    check(d.get("room") == room and d.get("viewer_id") == v.sub and d.get("reason") == reason
          and d.get("seconds") == s["billed_seconds"] and d.get("amount") == s["billed_amount"]
          and d.get("currency") == "CRD",
          f"session_ended {short(d)} against the service's session {short(s)}")
    check(len(sink.named("session_ended", of_session(v))) == 1,
          f"session_ended more than once: {short(sink.named('session_ended', of_session(v)))}")
    await B.check_usage_ledger(svc, v.sub, s["billed_amount"])
    return s


async def check_stopped_media(v, ev):
    """After the event `ev` that stops v, its frames stop within 2 s and stay flat."""
    await v.wait_quiet(0.5, 3.0)
    last = v.video_frames[-1][0] if v.video_frames else 0
    check(last <= ev.t + 2.0, f"{v.label}: frames went on {last - ev.t:.1f}s after '{ev.name}'")
    await v.assert_flat(1.5)


async def stopped_by_admin(ctx, make_request, reply, reason, final_event, viewer_left_reason):
    """A paying viewer (~3 billed seconds) is stopped by an admin request
    (make_request(room, viewer_id) -> body, answered `reply`): it gets
    `stopped` (reason) and `final_event`, then a hang-up; media stops within
    2 s; the service and the event handler agree on the totals. Returns
    (viewer, stopped event, the order of its last events)."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    price = 3
    room, key, perf = await B.live_room(ctx, price)
    v = await B.funded_viewer(ctx, svc, room, "adm", ticks=3)
    sub = v.sub
    await v.wait_frames(10, 10)
    i0 = len(v.handle.events)

    body = make_request(room, sub)
    expect_ok(await ctx.sync(body), reply, short(body))
    st = await v.handle.wait_plugin("stopped", 10)
    fin = await v.handle.wait_plugin(final_event, 10)
    d = st.data
    check(d.get("reason") == reason and d.get("room") == room and d.get("currency") == "CRD"
          and isinstance(d.get("seconds"), int) and d["seconds"] >= 3
          and d.get("amount") == price * d["seconds"], f"stopped event: {short(d)}")
    check(fin.data.get("room") == room, f"{final_event} event: {short(fin.data)}")
    names = [e.name for e in v.handle.events[i0:]]
    check(names.index("stopped") < names.index(final_event),
          f"'stopped' must come before '{final_event}' (API.md): {names}")
    await v.handle.wait_core("hangup", 10)
    await check_stopped_media(v, st)
    check(len([e for e in v.handle.events if e.name == "stopped"]) == 1,
          f"more than one 'stopped': {v.handle.events[i0:]}")
    over = [e.data for e in B.ticks(v) if e.data.get("seconds", 0) > d["seconds"]]
    check(not over, f"ticks beyond the stopped totals {short(d)}: {over}")

    # the event handler: viewer_stopped with every documented field
    vs = (await sink.wait("viewer_stopped", of_session(v), 10))[0]
    check(vs.get("room") == room and vs.get("viewer_id") == sub and vs.get("reason") == reason
          and vs.get("seconds") == d["seconds"] and vs.get("amount") == d["amount"],
          f"viewer_stopped {short(vs)} against the stopped event {short(d)}")
    vl = (await sink.wait("viewer_left", lambda x: x.get("room") == room and x.get("viewer_id") == sub,
                          10))[0]
    check(vl.get("reason") == viewer_left_reason, f"viewer_left: {short(vl)}")
    await check_ended(ctx, svc, room, v, reason, price, stopped=d)
    return room, v, st


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@test(timeout=90)
async def test_paid_viewer_kicked(ctx):
    """A paying viewer kicked by the admin: `stopped` (kicked) and `kicked`,
    a hang-up, media stops within 2 s, the service's session ends `kicked`
    with the stopped totals, the event handler gets viewer_stopped,
    viewer_left and session_ended."""
    await stopped_by_admin(
        ctx, lambda room, sub: {"request": "kick", "room": room, "viewer_id": sub}, "success",
        "kicked", "kicked", "kicked")


@test(timeout=90)
async def test_paid_viewer_room_destroyed(ctx):
    """A paying viewer whose room is destroyed: `stopped` (room_destroyed)
    and `destroyed`, a hang-up, media stops within 2 s, the service's
    session ends `room_destroyed` with the stopped totals, the event handler
    gets viewer_stopped, viewer_left (destroyed), session_ended and
    room_destroyed."""
    room, _, _ = await stopped_by_admin(
        ctx, lambda room, sub: {"request": "destroy", "room": room}, "destroyed",
        "room_destroyed", "destroyed", "destroyed")
    await ctx.sink.wait("room_destroyed", E.of_room(room), 10)
    check(not await ctx.exists(room), "the room exists after destroy")


@test(timeout=90)
async def test_paid_viewer_hangup(ctx):
    """A paying viewer closes its PeerConnection without `leave`: Janus
    reports the hang-up, the service's session ends `hangup` billed exactly
    its totals (no `stopped`: a hang-up is not a stop), the event handler
    gets viewer_left (hangup) and session_ended (hangup)."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    price = 2
    room, key, perf = await B.live_room(ctx, price)
    v = await B.funded_viewer(ctx, svc, room, "hup", ticks=3)
    sub = v.sub
    await v.wait_frames(10, 10)
    told = B.last_tick(v).data["seconds"]
    await v.close()                 # aiortc's close: DTLS close_notify, ICE stops
    t_close = time.monotonic()
    hup = await v.handle.wait_core("hangup", 15)
    vl = (await sink.wait("viewer_left", lambda x: x.get("room") == room and x.get("viewer_id") == sub,
                          10))[0]
    check(vl.get("reason") == "hangup", f"viewer_left: {short(vl)}")
    s = await check_ended(ctx, svc, room, v, "hangup", price)
    check(told <= s["billed_seconds"] <= told + 2 + (hup.t - t_close),
          f"billed {s['billed_seconds']}s; last tick before the close {told}s, Janus saw the hang-up "
          f"{hup.t - t_close:.1f}s after it")
    check(not [e for e in v.handle.events if e.name == "stopped"],
          f"'stopped' on a hang-up: {v.handle.events}")
    check(not sink.named("viewer_stopped", of_session(v)),
          f"viewer_stopped on a hang-up: {short(sink.named('viewer_stopped', of_session(v)))}")
    check(B.viewer_entry(await ctx.participants(room), sub) is None,
          "the viewer is still listed after its hang-up")


@test(timeout=90)
async def test_refresh_extends_exp(ctx):
    """A token expiring ~8 s into the session (accepted within the 30 s
    leeway) refreshed before it expires with one valid 15 minutes:
    `refreshed` has the new exp and does not say resumed; no `stopped` well
    past the old expiry while frames keep arriving, no renegotiation, ticks
    keep growing."""
    sink = ctx.sink
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    price = 2
    room, key, perf = await B.live_room(ctx, price)
    sub = H.rand_id("ref")
    await svc.fund(sub, 100000)
    old_exp = int(time.time()) - 22         # the ticker stops it at old_exp + 30 (leeway)
    v = await B.paying_viewer(ctx, room, sub, exp=old_exp)
    await v.wait_frames(5, 15)
    await B.wait_tick(v, 1, 10)
    left = old_exp + 30 - time.time()
    check(left > 1.0, f"set-up too slow: the old token expires in {left:.1f}s, no time left to refresh")
    check(not [e for e in v.handle.events if e.name == "stopped"], f"stopped early: {v.handle.events}")
    i0 = len(v.handle.events)
    new_exp = int(time.time()) + 900
    r = expect_ok(await v.handle.request({"request": "refresh", "token": B.token(room, sub, exp=new_exp)}),
                  "refreshed", "refresh")
    check(r.get("exp") == new_exp and r.get("resumed") in (False, None) and r.get("budget") is None,
          f"refreshed: {short(r)} (new exp {new_exp})")
    t_refresh_tick = B.last_tick(v).data["seconds"]
    # frames keep arriving until 4 s past the old expiry (leeway included)
    while time.time() < old_exp + 30 + 4:
        stop = [e for e in v.handle.events if e.name == "stopped"]
        check(not stop, f"'stopped' after the refresh (the old token's expiry, leeway included, "
              f"is {old_exp + 30 - time.time():+.1f}s away): {stop}")
        await v.wait_frames(1, 5)
    await v.wait_frames(15, 10)
    new = v.handle.events[i0:]
    check(not [e for e in v.handle.events if e.name == "stopped"],
          f"'stopped' after the refresh: {[e for e in new if e.name == 'stopped']}")
    check(not [e for e in new if e.jsep or e.name in ("live", "offline") or e.kind == "hangup"],
          f"renegotiation or hang-up after the refresh: {new}")
    check(v.offers == 1 and v.pc.connectionState == "connected",
          f"offers {v.offers}, pc {v.pc.connectionState}")
    told = B.last_tick(v).data["seconds"]
    check(told >= t_refresh_tick + 3,
          f"ticks did not keep growing: {t_refresh_tick}s at the refresh, {told}s > 4 s past the old expiry")
    ve = B.viewer_entry(await ctx.participants(room), sub)
    check(ve and ve.get("stopped") is False and ve.get("seconds", 0) >= told,
          f"listparticipants: {short(ve)}")
    check(not sink.named("viewer_stopped", of_session(v)),
          f"viewer_stopped: {short(sink.named('viewer_stopped', of_session(v)))}")
    await B.leave(v)
    s = await check_ended(ctx, svc, room, v, "left", price)
    check(s["billed_seconds"] >= told, f"billed {short(s)} below the last tick {told}")


@test(timeout=90)
async def test_tick_notify_interval(ctx):
    """A room with tick_notify 3: the viewer's `tick` comes every 3 billed
    seconds (seconds 3, 6, 9, ...), the performer's `earnings` every 3
    seconds while live."""
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    price = 2
    room, key, perf = await B.live_room(ctx, price, tick_notify=3)
    entry = [r for r in await ctx.room_list() if r.get("room") == room]
    check(entry and entry[0].get("tick_notify") == 3, f"list: {short(entry)}")
    sub = H.rand_id("tn")
    await svc.fund(sub, 100000)
    v = await B.paying_viewer(ctx, room, sub)
    await B.wait_tick(v, 15, 30)
    t_obs = time.monotonic()
    await B.wait_tick(v, 27, 30)
    tk = [e.data for e in B.ticks(v)]
    secs = [d.get("seconds") for d in tk]
    check(secs == list(range(3, 3 * len(secs) + 1, 3)),
          f"tick seconds with tick_notify 3 (want 3, 6, 9, ...): {secs}")
    check(all(d.get("amount") == price * d["seconds"] and d.get("currency") == "CRD" for d in tk),
          f"ticks: {short(tk, 1000)}")
    # earnings: every 3 s of the ticker while live (not billed seconds, so
    # checked by count over the observed window, and by what a single viewer
    # can add in 3 s)
    earn = [e for e in perf.handle.events if e.name == "earnings"]
    win = [e for e in earn if e.t >= t_obs]
    check(len(win) >= 3, f"{len(win)} 'earnings' in {time.monotonic() - t_obs:.1f}s: {short([e.data for e in win])}")
    gap = (win[-1].t - win[0].t) / (len(win) - 1)
    check(2.4 <= gap <= 3.6,
          f"'earnings' every {gap:.2f}s on average over {len(win)} events, want 3: "
          f"{[(round(e.t - t_obs, 1), e.data.get('seconds')) for e in win]}")
    ws = [e.data.get("seconds") for e in win]
    diffs = [b - a for a, b in zip(ws, ws[1:])]
    check(all(0 < x <= 3 for x in diffs),
          f"earnings seconds {ws}: one paying viewer adds 1 to 3 viewer-seconds per 3 s")
    check(all(e.data.get("amount") == price * e.data.get("seconds", -1)
              and e.data.get("paying_viewers") == 1 for e in win),
          f"earnings: {short([e.data for e in win], 1000)}")
    await B.leave(v)
    s = await check_ended(ctx, svc, room, v, "left", price)
    check(s["billed_seconds"] >= secs[-1], f"billed {short(s)}, last tick {secs[-1]}")


@test(timeout=90)
async def test_refresh_lowers_budget(ctx):
    """A refresh whose budget cannot pay the next second stops a running
    session at once: `refreshed` (not resumed), then `stopped`
    (budget_exhausted) within 0.3 s, not at the next tick up to a second
    later (media meanwhile would go unbilled); its frames stop within 2 s;
    the service bills exactly the stopped totals."""
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    price = 2
    room, key, perf = await B.live_room(ctx, price)
    v = await B.funded_viewer(ctx, svc, room, "low", ticks=3, budget=100 * price)
    sub = v.sub
    await v.wait_frames(10, 10)
    spent = B.last_tick(v).data["amount"]      # the new budget: what was spent by now
    r = await v.handle.request({"request": "refresh", "token": B.token(room, sub, budget=spent)})
    d = expect_ok(r, "refreshed", "refresh with a lower budget")
    check(d.get("budget") == spent and d.get("resumed") is False, f"refreshed: {short(d)}")
    st = await v.handle.wait_plugin("stopped", 5)
    check(st.data.get("reason") == "budget_exhausted" and st.data.get("amount") >= spent
          and st.data.get("amount") == price * st.data.get("seconds", -1), f"stopped: {short(st.data)}")
    check(st.t - r.t < 0.3, f"'stopped' came {st.t - r.t:.2f}s after 'refreshed': at a tick, not at once")
    await check_stopped_media(v, st)
    await B.leave(v)
    await check_ended(ctx, svc, room, v, "left", price, stopped=st.data)


@test(timeout=120)
async def test_refresh_alternating_budgets(ctx):
    """A viewer alternating two valid tokens, one with a large budget (each
    refresh with it resumes the session) and one whose budget is below what
    it has spent (each refresh with it stops the session), 8 times, with
    media between resume and stop and none for 1.1 s after the stop: each
    stop bills at least one more second than the one before (the second in
    progress at the stop had media), so no stretch of media is free
    (billing only the whole seconds before a refresh billed nothing when
    resume and stop fell in the same second)."""
    svc = await B.service(ctx)
    await E.events_janus(ctx, svc)
    price = 2
    room, key, perf = await B.live_room(ctx, price)
    v = await B.funded_viewer(ctx, svc, room, "alt", ticks=2, budget=10 ** 6)
    sub = v.sub
    low, high = B.token(room, sub, budget=1), B.token(room, sub, budget=10 ** 6)

    async def stop(i):
        n = len([e for e in v.handle.events if e.name == "stopped"])
        d = expect_ok(await v.handle.request({"request": "refresh", "token": low}), "refreshed", f"low refresh {i}")
        check(d.get("resumed") is False, f"low refresh {i}: {short(d)}")
        st = await v.handle.wait_event(
            lambda e: e.name == "stopped" and [x for x in v.handle.events if x.name == "stopped"].index(e) == n,
            5, what=f"'stopped' {i}")
        check(st.data.get("reason") == "budget_exhausted", f"stopped {i}: {short(st.data)}")
        await v.assert_flat(1.1)                 # no media: the next resume is in a later second
        return st.data["seconds"], st.t

    seconds = [(await stop(0))[0]]
    spans = []
    for i in range(1, 9):
        r = await v.handle.request({"request": "refresh", "token": high})
        d = expect_ok(r, "refreshed", f"high refresh {i}")
        check(d.get("resumed") is True, f"high refresh {i}: {short(d)}")
        await v.wait_frames(8, 10)               # some media
        total, t_stop = await stop(i)
        seconds.append(total)
        spans.append(t_stop - r.t)
    gains = [b - a for a, b in zip(seconds, seconds[1:])]
    # media flowed between the resume and the stop: at least one second, at
    # most the seconds that span touches (a little slack for the round trips)
    check(all(1 <= g <= math.ceil(span + 0.3) + 1 for g, span in zip(gains, spans)),
          f"seconds billed by each resume-media-stop cycle: {gains} over media spans of "
          f"{[round(x, 2) for x in spans]} s (totals {seconds})")
    await B.leave(v)
    s = await B.ended_session(svc, v.session)
    check(s["billed_seconds"] == seconds[-1] and s["billed_amount"] == price * seconds[-1]
          and s["reported_seconds"] == seconds[-1], f"session {short(s)} against the last stop's {seconds[-1]} s")
