"""paystream integration tests of many offers pushed in one go: a room with
many waiting viewers goes live, so the plugin sends each of them an offer.

Janus's push_event with an offer waits until ICE gathering for that handle
is done; these tests time how long the last viewer waits for its offer and
check that another room's requests are answered meanwhile.

`tests/integration/run --bench-offers` (bench_offers.py) measures the
scenario.
"""

import asyncio
import statistics
import time

import harness as H
from harness import check, expect_error, expect_ok, short


async def waiting_room_goes_live(ctx, n, media=True, deadline=60):
    """n viewers wait in an offline room, then its performer publishes.
    Meanwhile another room gets an asynchronous `watch` (queued right behind
    the publish) and a synchronous `listparticipants`.  Returns the timings,
    in seconds from the moment the publish was sent:
      last_offer   the last viewer's `live` event with its offer arrived
      offers       every viewer's, sorted
      published    the performer's `published` answer arrived
      other_async  the other room's `watching` arrived
      other_sync   the other room's `listparticipants` reply arrived
    With media, every viewer then answers and must decode video frames."""
    room, key, _ = await ctx.create_room(description=f"{n} waiting viewers")
    other_room, _, _ = await ctx.create_room(description="the other room")
    viewers = await asyncio.gather(*(ctx.viewer(f"waiting{i + 1}") for i in range(n)))
    answers = await asyncio.gather(*(v.watch(room, display=v.label) for v in viewers))
    for v, ev in zip(viewers, answers):
        data = expect_ok(ev, "watching", f"{v.label} watch")
        check(data.get("status") == "waiting" and ev.jsep is None,
              f"{v.label}: watch on an offline room: {short(data)} jsep {short(ev.jsep)}")
    other = await ctx.viewer("other")
    mgmt = await ctx.mgmt()
    perf = await ctx.performer()
    jsep = await perf.make_offer()

    t0 = time.monotonic()
    kind, tx = await perf.handle.send({"request": "publish", "room": room,
                                       "stream_key": key}, jsep)
    check(kind == "ack", f"publish answered synchronously: {tx}")
    # queued right behind the publish on the plugin's handler thread
    kind, other_tx = await other.handle.send({"request": "watch", "room": other_room})
    check(kind == "ack", f"other room's watch answered synchronously: {other_tx}")
    parts = await mgmt.sync({"request": "listparticipants", "room": other_room})
    other_sync = time.monotonic() - t0
    expect_ok(parts, "participants", "other room's listparticipants")

    published = await perf.handle.wait_event(lambda e: e.transaction == tx, deadline,
                                             what="the answer to publish")
    expect_ok(published, "published", "publish")
    other_ev = await other.handle.wait_event(lambda e: e.transaction == other_tx, deadline,
                                             what="the other room's watch answer")
    data = expect_ok(other_ev, "watching", "other room's watch")
    check(data.get("status") == "waiting", f"other room's watch: {short(data)}")
    lives = await asyncio.gather(*(v.handle.wait_plugin("live", deadline) for v in viewers))
    for v, ev in zip(viewers, lives):
        check(ev.data.get("room") == room, f"{v.label}: live event {short(ev.data)}")
        check(ev.jsep is not None and ev.jsep.get("type") == "offer",
              f"{v.label}: 'live' for a waiting viewer without an offer: {ev}")
    offers = sorted(ev.t - t0 for ev in lives)
    result = {"n": n, "last_offer": offers[-1], "first_offer": offers[0],
              "median_offer": statistics.median(offers), "offers": offers,
              "published": published.t - t0, "other_async": other_ev.t - t0,
              "other_sync": other_sync}
    if not media:
        return result

    await perf.pc.setRemoteDescription(H.RTCSessionDescription(
        sdp=published.jsep["sdp"], type="answer"))
    await perf.wait_connected()
    await asyncio.gather(*(v.answer(ev.jsep, timeout=deadline) for v, ev in zip(viewers, lives)))
    await asyncio.gather(*(v.wait_connected(deadline) for v in viewers))
    await asyncio.gather(*(v.wait_frames(5, deadline) for v in viewers))
    for v in viewers:
        check(v.offers == 1, f"{v.label}: {v.offers} offers")
        extra = [e for e in v.handle.events if e.jsep and e not in lives]
        check(not extra, f"{v.label}: more than one offer: {extra}")
    return result


# ---------------------------------------------------------------------------
# Tests (each on its own Janus, which uses a StunServer)
# ---------------------------------------------------------------------------

def general_config(**items):
    return "general: {\n" + "".join(f'\t{k} = "{v}"\n' for k, v in items.items()) + "}\n"


async def first_live(viewers, deadline):
    """Wait until one of viewers got its `live` event; returns that viewer."""
    tasks = {asyncio.ensure_future(v.handle.wait_event(
        lambda e: e.name == "live", deadline, "a 'live' event", consume=False)): v for v in viewers}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    first = next(iter(done))
    first.result()      # raises if it timed out
    return tasks[first]


def got_live(v):
    return any(e.name == "live" for e in v.handle.plugin_events())


async def test_waiting_viewers_offers(ctx):
    """40 viewers wait in a room and Janus's gathering takes 100 ms (a STUN
    server): when the performer publishes, every viewer gets its offer and
    decodes media; the offers are pushed side by side, and another room's
    requests are answered while they are. (The delay is long so that the
    bound below, relative to what pushing one after the other must take at
    least, holds with room to spare on a slow or loaded machine.)"""
    n, delay = 40, 0.1
    stun = H.StunServer(delay)
    try:
        await ctx.start_server(None, stun=stun)
        res = await waiting_room_goes_live(ctx, n, media=True)
    finally:
        stun.close()
    ms = {k: round(v * 1000) for k, v in res.items() if isinstance(v, float)}
    check(stun.requests >= n, f"the STUN server saw {stun.requests} requests for {n} offers: "
          f"Janus did not gather through it")
    check(res["other_async"] < res["last_offer"],
          f"another room's watch (queued right behind the publish) was answered only after the "
          f"last of {n} offers: the handler thread pushed the offers itself ({ms})")
    check(res["other_sync"] < res["last_offer"],
          f"another room's listparticipants was answered only after the last offer ({ms})")
    serial = n * delay
    check(res["last_offer"] < serial * 0.6,
          f"the last of {n} offers arrived {res['last_offer']:.2f}s after the publish: not much "
          f"less than {n} gatherings of {delay}s one after the other ({serial:.1f}s); {ms}")


async def test_offers_queued_races(ctx):
    """One offer thread and 100 ms gatherings, so offers stay queued: a viewer
    kicked, one leaving and one whose Janus session is destroyed while their
    offers wait.  The kicked and the leaving viewer get `live` with the offer
    before `kicked` / `left`; a watch right behind the leave is refused (450:
    the offer's PeerConnection is closing); the destroyed one is skipped;
    everyone else gets an offer; Janus is fine."""
    n = 16
    stun = H.StunServer(0.1)
    try:
        await ctx.start_server(general_config(offer_threads=1), stun=stun)
        room, key, _ = await ctx.create_room(secret="races")
        viewers = await asyncio.gather(*(ctx.viewer(f"queued{i + 1}") for i in range(n)))
        for v, ev in zip(viewers, await asyncio.gather(*(v.watch(room) for v in viewers))):
            check(expect_ok(ev, "watching", f"{v.label} watch").get("status") == "waiting",
                  f"{v.label}: watch on an offline room: {short(ev.data)}")
        perf = await ctx.performer()
        expect_ok(await perf.publish(room, key), "published", "publish")
        await first_live(viewers, 20)
        queued = [v for v in viewers if not got_live(v)]
        check(len(queued) >= 3, f"only {len(queued)} viewers still wait for their offer")
        kicked, leaver, gone = queued[0], queued[1], queued[2]
        t_kick = time.monotonic()
        expect_ok(await ctx.sync({"request": "kick", "room": room, "secret": "races",
                                  "viewer_id": kicked.viewer_id}), "success", "kick")
        kind, leave_tx = await leaver.handle.send({"request": "leave"})
        check(kind == "ack", "leave answered synchronously")
        # right behind the leave: its PeerConnection (for the queued offer)
        # is about to be closed, so the handle takes no new role yet (450)
        kind, rewatch_tx = await leaver.handle.send({"request": "watch", "room": room})
        check(kind == "ack", "watch answered synchronously")
        await gone.handle.session.destroy()
        others = [v for v in viewers if v not in (kicked, leaver, gone)]

        for v in others:
            ev = await v.handle.wait_plugin("live", 30)
            check(ev.jsep is not None and ev.jsep.get("type") == "offer",
                  f"{v.label}: 'live' without an offer: {ev}")
        await kicked.handle.wait_plugin("kicked", 30)
        left = await leaver.handle.wait_event(lambda e: e.transaction == leave_tx, 30,
                                              what="the answer to leave")
        expect_ok(left, "left", "leave")
        rewatch = await leaver.handle.wait_event(lambda e: e.transaction == rewatch_tx, 30,
                                                 what="the answer to watch after leave")
        expect_error(rewatch, 450, "watch right after leave, with the offer's PeerConnection closing")
        for v, last in ((kicked, "kicked"), (leaver, "left")):
            evs = v.handle.plugin_events()
            names = [e.name for e in evs]
            check("live" in names and names.index("live") < names.index(last),
                  f"{v.label}: '{last}' overtook the queued 'live' with its offer: {evs}")
            live = evs[names.index("live")]
            check(live.jsep is not None and live.jsep.get("type") == "offer",
                  f"{v.label}: 'live' without an offer: {live}")
        live = next(e for e in kicked.handle.plugin_events() if e.name == "live")
        check(live.t > t_kick, f"{kicked.label}: its offer arrived before the kick was sent: "
              f"the race was not exercised")
        parts = await ctx.participants(room)
        ids = sorted(x.get("viewer_id") for x in parts.get("viewers") or [])
        check(ids == sorted(v.viewer_id for v in others),
              f"listparticipants after the kick, the leave and the destroyed session: {ids}")
        check(ctx.server.alive(), "janus died")
    finally:
        stun.close()


async def test_stop_with_offers_queued(ctx):
    """SIGTERM while 20 offers wait for one offer thread (200 ms gatherings):
    Janus stops at once (the queued offers are dropped, not pushed) with exit
    code 0."""
    n = 20
    stun = H.StunServer(0.2)
    try:
        srv = await ctx.start_server(general_config(offer_threads=1), stun=stun)
        room, key, _ = await ctx.create_room()
        viewers = await asyncio.gather(*(ctx.viewer(f"queued{i + 1}") for i in range(n)))
        await asyncio.gather(*(v.watch(room) for v in viewers))
        perf = await ctx.performer()
        expect_ok(await perf.publish(room, key), "published", "publish")
        await first_live(viewers, 20)
        waiting = sum(1 for v in viewers if not got_live(v))
        check(waiting >= n // 2, f"only {waiting} offers still queued")
        t0 = time.monotonic()
        rc = await asyncio.to_thread(srv.stop)
        took = time.monotonic() - t0
    finally:
        stun.close()
    check(rc == 0, f"janus exited with code {rc} on SIGTERM with {waiting} offers queued")
    check(took < 2.5, f"janus took {took:.1f}s to stop with {waiting} offers of 0.2s queued: "
          f"they were pushed, not dropped")
    check(srv.log_grep("[paystream] destroyed"), "no '[paystream] destroyed' in the log")


TESTS = [
    ("waiting_viewers_offers", test_waiting_viewers_offers, True, 180),
    ("offers_queued_races", test_offers_queued_races, True, 120),
    ("stop_with_offers_queued", test_stop_with_offers_queued, True, 120),
]
