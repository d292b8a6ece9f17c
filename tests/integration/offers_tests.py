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
from harness import check, expect_ok, short


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
