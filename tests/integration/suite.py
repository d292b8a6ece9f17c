"""paystream integration tests: run through ./run (network namespace)."""

import asyncio
import os
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as H  # noqa: E402
from harness import check, expect_error, expect_ok, short  # noqa: E402

RED = (200, 30, 30)
BLUE = (30, 30, 200)
GREEN = (30, 180, 30)

TESTS = []


def test(own_server=False, timeout=120):
    def deco(fn):
        TESTS.append((fn.__name__.removeprefix("test_"), fn, own_server, timeout))
        return fn
    return deco


# ---------------------------------------------------------------------------
# Per-test context
# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, runner, server):
        self.runner = runner
        self.server = server
        self.sessions = []
        self.peers = []
        self._mgmt = None

    async def handle(self):
        s = await H.JanusSession(self.server).create()
        self.sessions.append(s)
        return await s.attach()

    async def performer(self, label="performer", color=RED, **kw):
        p = H.Performer(await self.handle(), label, color, **kw)
        self.peers.append(p)
        return p

    async def viewer(self, label="viewer"):
        v = H.Viewer(await self.handle(), label)
        self.peers.append(v)
        return v

    async def mgmt(self):
        if self._mgmt is None:
            self._mgmt = await self.handle()
        return self._mgmt

    async def sync(self, body):
        return await (await self.mgmt()).sync(body)

    async def create_room(self, **fields):
        body = {"request": "create", "room": H.rand_id("room"),
                "stream_key": H.rand_id("key", 16)}
        body.update(fields)
        data = await self.sync(body)
        expect_ok(data, "created", f"create {short(body)}")
        check(data.get("room") == body["room"],
              f"create: reply room {data.get('room')!r} != {body['room']!r}")
        return body["room"], body["stream_key"], data

    async def participants(self, room):
        data = await self.sync({"request": "listparticipants", "room": room})
        return expect_ok(data, "participants", f"listparticipants {room}")

    async def room_list(self):
        data = await self.sync({"request": "list"})
        expect_ok(data, "success", "list")
        check(isinstance(data.get("list"), list), f"list: no 'list' array: {short(data)}")
        return data["list"]

    async def exists(self, room):
        data = await self.sync({"request": "exists", "room": room})
        expect_ok(data, "success", f"exists {room}")
        check(isinstance(data.get("exists"), bool), f"exists: not a boolean: {short(data)}")
        return data["exists"]

    async def start_server(self, plugin_config=None, workdir=None, **server_kw):
        """A private Janus for this test (the shared one is stopped);
        server_kw go to harness.JanusServer (e.g. events_backend)."""
        return await self.runner.own_server(self, plugin_config, workdir, **server_kw)

    async def cleanup(self):
        for p in self.peers:
            try:
                await p.close()
            except Exception:  # noqa: BLE001
                pass
        for s in self.sessions:
            await s.destroy()
        self.peers, self.sessions, self._mgmt = [], [], None


def find_room(lst, room):
    for r in lst:
        if r.get("room") == room:
            return r
    return None


async def three_viewers_live(ctx, room, key, n=3):
    perf = await ctx.performer(color=RED)
    await perf.go_live(room, key, display="perf")
    viewers = []
    for i in range(n):
        v = await ctx.viewer(f"viewer{i + 1}")
        await v.join_live(room, display=f"v{i + 1}")
        viewers.append(v)
    return perf, viewers


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@test()
async def test_three_viewers(ctx):
    """Three viewers decode the performer's video and receive its audio."""
    room, key, _ = await ctx.create_room(description="three viewers")
    perf, viewers = await three_viewers_live(ctx, room, key, 3)
    await asyncio.gather(*(v.wait_frames(30, 20, audio_min=25) for v in viewers))
    for v in viewers:
        check(H.color_close(v.recent_color(), RED),
              f"{v.label}: decoded colour {v.recent_color()} is not the performer's {RED}")
        check(v.offers == 1, f"{v.label}: {v.offers} offers for one watch")
    parts = await ctx.participants(room)
    p = parts.get("performer")
    check(isinstance(p, dict) and p.get("live") is True and p.get("display") == "perf",
          f"listparticipants performer: {short(p)}")
    check(isinstance(p.get("since"), int) and p["since"] > 10**15,
          f"performer 'since' is not Unix microseconds: {p.get('since')}")
    vs = parts.get("viewers") or []
    check(len(vs) == 3, f"listparticipants lists {len(vs)} viewers, want 3: {short(vs)}")
    check(sorted(x.get("viewer_id") for x in vs) == sorted(v.viewer_id for v in viewers),
          f"viewer ids {short(vs)} != {[v.viewer_id for v in viewers]}")
    check(all(x.get("state") == "started" for x in vs), f"viewer states: {short(vs)}")
    entry = find_room(await ctx.room_list(), room)
    check(entry is not None, f"list does not show room {room}")
    check(entry.get("live") is True and entry.get("viewers") == 3,
          f"list entry: {short(entry)}")
    check(entry.get("description") == "three viewers", f"list entry: {short(entry)}")


@test()
async def test_viewer_before_performer(ctx):
    """A viewer waiting in an offline room gets 'live' with an offer."""
    room, key, _ = await ctx.create_room()
    v = await ctx.viewer()
    ev = await v.watch(room, display="early")
    data = expect_ok(ev, "watching", "watch offline room")
    check(data.get("status") == "waiting", f"watch offline room: status {data.get('status')}")
    check(ev.jsep is None, f"watch offline room came with a JSEP: {short(ev.jsep)}")
    check(data.get("room") == room and data.get("viewer_id"),
          f"watching event lacks room/viewer_id: {short(data)}")
    vs = (await ctx.participants(room)).get("viewers") or []
    check(len(vs) == 1 and vs[0].get("state") == "waiting",
          f"listparticipants while waiting: {short(vs)}")
    perf = await ctx.performer()
    await perf.go_live(room, key)
    live = await v.handle.wait_plugin("live", 15)
    check(live.data.get("room") == room, f"live event: {short(live.data)}")
    check(live.jsep is not None, f"'live' for a waiting viewer has no offer: {live}")
    await v.answer(live.jsep)
    await v.wait_connected()
    await v.wait_frames(30, 20, audio_min=10)
    check(H.color_close(v.recent_color(), RED), f"colour {v.recent_color()}")


@test()
async def test_takeover(ctx):
    """A second connection with the key and takeover:true replaces the
    performer; viewers keep decoding with no renegotiation."""
    room, key, _ = await ctx.create_room()
    a = await ctx.performer("performerA", RED)
    await a.go_live(room, key, display="A")
    viewers = []
    for i in range(2):
        v = await ctx.viewer(f"viewer{i + 1}")
        await v.join_live(room)
        viewers.append(v)
    await asyncio.gather(*(v.wait_frames(20, 20) for v in viewers))
    for v in viewers:
        check(H.color_close(v.recent_color(), RED), f"{v.label} colour before takeover {v.recent_color()}")
    base = {v.label: len(v.handle.events) for v in viewers}

    b = await ctx.performer("performerB", BLUE)
    ev = await b.publish(room, key, display="B", takeover=True)
    expect_ok(ev, "published", "takeover publish")
    rep = await a.handle.wait_plugin("replaced", 10)
    check(rep.data.get("room") == room, f"replaced event: {short(rep.data)}")
    await a.handle.wait_core("hangup", 10)
    await b.wait_connected()

    # viewers switch to B's video without renegotiating
    for v in viewers:
        end = time.monotonic() + 15
        while not H.color_close(v.recent_color(5), BLUE):
            check(time.monotonic() < end,
                  f"{v.label}: still decoding colour {v.recent_color(5)} 15s after takeover "
                  f"(frames {v.nframes}); events {v.handle.events[base[v.label]:]}")
            await v.wait_frames(1, 10)
    await asyncio.gather(*(v.wait_frames(30, 15) for v in viewers))
    for v in viewers:
        check(H.color_close(v.recent_color(), BLUE), f"{v.label} colour after takeover {v.recent_color()}")
        new = v.handle.events[base[v.label]:]
        jseps = [e for e in new if e.jsep]
        check(not jseps, f"{v.label}: got a JSEP after the takeover: {jseps}")
        check(not [e for e in new if e.kind == "hangup"], f"{v.label}: hung up: {new}")
        check(v.offers == 1, f"{v.label}: {v.offers} offers")
        check(v.pc.connectionState == "connected", f"{v.label}: pc {v.pc.connectionState}")
    p = (await ctx.participants(room)).get("performer")
    check(isinstance(p, dict) and p.get("display") == "B" and p.get("live") is True,
          f"performer after takeover: {short(p)}")


@test()
async def test_pause_resume(ctx):
    """pause stops the viewer's media, resume brings it back; another
    viewer is unaffected."""
    room, key, _ = await ctx.create_room()
    perf = await ctx.performer()
    await perf.go_live(room, key)
    v1 = await ctx.viewer("viewer1")
    v2 = await ctx.viewer("viewer2")
    await v1.join_live(room)
    await v2.join_live(room)
    await asyncio.gather(v1.wait_frames(20, 20), v2.wait_frames(20, 20))

    ev = await v1.handle.request({"request": "pause"})
    expect_ok(ev, "paused", "pause")
    vs = (await ctx.participants(room)).get("viewers") or []
    st = {x.get("viewer_id"): x.get("state") for x in vs}
    check(st.get(v1.viewer_id) == "paused" and st.get(v2.viewer_id) == "started",
          f"states after pause: {st}")
    await v1.wait_quiet(0.6, 4.0)
    v2_before = v2.nframes
    a1 = v1.audio_frames
    await v1.assert_flat(3.0)
    check(v1.audio_frames - a1 <= 2,
          f"viewer1: {v1.audio_frames - a1} audio frames while paused")
    check(v2.nframes - v2_before >= 30,
          f"viewer2 decoded only {v2.nframes - v2_before} frames while viewer1 was paused")

    ev = await v1.handle.request({"request": "resume"})
    expect_ok(ev, "resumed", "resume")
    await v1.wait_frames(30, 15, audio_min=10)
    st = {x.get("viewer_id"): x.get("state")
          for x in (await ctx.participants(room)).get("viewers") or []}
    check(st.get(v1.viewer_id) == "started", f"state after resume: {st}")
    check(v1.offers == 1 and not [e for e in v1.handle.events if e.jsep and e.jsep.get("type") == "offer"][1:],
          "viewer1 renegotiated on pause/resume")


@test()
async def test_keyframe_requests(ctx):
    """The performer is asked for a keyframe (PLI) when a viewer's
    PeerConnection comes up, on resume, on configure keyframe:true and every
    fir_freq seconds; a late viewer decodes at once, not at the next
    periodic keyframe."""
    room, key, _ = await ctx.create_room(fir_freq=0)
    perf = await ctx.performer()
    await perf.go_live(room, key)
    # a viewer joining right after the performer connected (less than a
    # second after the plugin's own keyframe request for the performer)
    v1 = await ctx.viewer("viewer1")
    await v1.join_live(room)
    await v1.wait_frames(10, 5)
    # a viewer joining when the performer's first keyframe is long gone
    await perf.wait_frames_sent(perf.video_track.n + 60, 10)
    k = perf.pli_count
    v = await ctx.viewer("viewer2")
    await v.join_live(room)
    await perf.wait_pli(k, 3, "after a viewer's PeerConnection came up")
    await v.wait_frames(10, 5)

    expect_ok(await v.handle.request({"request": "pause"}), "paused", "pause")
    await v.wait_quiet(0.6, 4.0)
    k = perf.pli_count
    expect_ok(await v.handle.request({"request": "resume"}), "resumed", "resume")
    await perf.wait_pli(k, 3, "after resume")
    await v.wait_frames(10, 5)

    k = perf.pli_count
    ev = await perf.handle.request({"request": "configure", "keyframe": True})
    expect_ok(ev, "configured", "performer configure keyframe")
    await perf.wait_pli(k, 3, "after configure with keyframe:true")

    data = await ctx.sync({"request": "edit", "room": room, "new_fir_freq": 1})
    expect_ok(data, "edited", "edit new_fir_freq")
    k = perf.pli_count
    await perf.wait_pli(k + 2, 5, "(want 3 in 5s with fir_freq 1)")


@test()
async def test_publish_refusals(ctx):
    """449 for a second publisher without takeover, 447 for a wrong key."""
    room, key, _ = await ctx.create_room()
    a = await ctx.performer("performerA")
    await a.go_live(room, key, display="A")

    b = await ctx.performer("performerB", BLUE)
    ev = await b.publish(room, key, display="B")
    expect_error(ev, 449, "second publish without takeover")
    check(ev.jsep is None, f"refused publish came with a JSEP: {ev}")
    c = await ctx.performer("performerC", BLUE)
    ev = await c.publish(room, key, display="C", takeover=False)
    expect_error(ev, 449, "second publish with takeover:false")

    # (each attempt on a fresh handle: after a refused offer the Janus core
    # keeps the handle's ICE agent, so a new PeerConnection needs a new handle)
    room2, key2, _ = await ctx.create_room()
    d = await ctx.performer("performerD", GREEN)
    ev = await d.publish(room2, key2 + "x", display="D")
    expect_error(ev, 447, "publish with a wrong stream key")
    check(ev.jsep is None, f"refused publish came with a JSEP: {ev}")
    d2 = await ctx.performer("performerD2", GREEN)
    ev = await d2.publish(room2, "", display="D")
    check(ev.data.get("error_code") in (447, 443),
          f"publish with an empty stream key: {short(ev.data)}")

    # A is untouched
    check(not [e for e in a.handle.events if e.name in ("replaced", "kicked")],
          f"performer A got {a.handle.events}")
    p = (await ctx.participants(room)).get("performer")
    check(isinstance(p, dict) and p.get("display") == "A" and p.get("live") is True,
          f"performer after refusals: {short(p)}")
    p2 = (await ctx.participants(room2)).get("performer")
    check(p2 is None or p2.get("live") is not True, f"room2 performer after 447: {short(p2)}")
    # the key is still good after the refusals
    d3 = await ctx.performer("performerD3", GREEN)
    await d3.go_live(room2, key2, display="D")


@test()
async def test_watch_refusals(ctx):
    """448 wrong/missing pin, 451 room full, 455 viewer_id taken, 444."""
    room, key, _ = await ctx.create_room(pin="1234", max_viewers=2)
    h = await ctx.handle()
    ev = await h.request({"request": "watch", "room": room})
    expect_error(ev, 448, "watch without the pin")
    ev = await h.request({"request": "watch", "room": room, "pin": "4321"})
    expect_error(ev, 448, "watch with a wrong pin")
    ev = await h.request({"request": "watch", "room": room, "pin": "1234", "viewer_id": "alice"})
    data = expect_ok(ev, "watching", "watch with the right pin")
    check(data.get("viewer_id") == "alice" and data.get("status") == "waiting", short(data))

    h2 = await ctx.handle()
    ev = await h2.request({"request": "watch", "room": room, "pin": "1234", "viewer_id": "alice"})
    expect_error(ev, 455, "watch with a taken viewer_id")
    ev = await h2.request({"request": "watch", "room": room, "pin": "1234", "viewer_id": "bob"})
    expect_ok(ev, "watching", "second viewer")
    h3 = await ctx.handle()
    ev = await h3.request({"request": "watch", "room": room, "pin": "1234"})
    expect_error(ev, 451, "watch a full room")
    ev = await h3.request({"request": "watch", "room": H.rand_id("nosuch")})
    expect_error(ev, 444, "watch an unknown room")
    entry = find_room(await ctx.room_list(), room)
    check(entry and entry.get("pin_required") is True and entry.get("viewers") == 2,
          f"list entry: {short(entry)}")
    check("1234" not in short(entry, 10000), f"list leaks the pin: {short(entry)}")


@test()
async def test_secret_refusals(ctx):
    """destroy/kick/edit without or with a wrong secret: 446."""
    room, key, _ = await ctx.create_room(secret="s3cret")
    v = await ctx.viewer()
    expect_ok(await v.watch(room, viewer_id="carol"), "watching", "watch")
    cases = [
        ({"request": "destroy", "room": room}, "destroy without secret"),
        ({"request": "destroy", "room": room, "secret": "wrong"}, "destroy with a wrong secret"),
        ({"request": "kick", "room": room, "viewer_id": "carol"}, "kick without secret"),
        ({"request": "kick", "room": room, "viewer_id": "carol", "secret": "wrong"}, "kick with a wrong secret"),
        ({"request": "kick", "room": room, "performer": True, "secret": ""}, "kick with an empty secret"),
        ({"request": "edit", "room": room, "new_description": "x"}, "edit without secret"),
    ]
    for body, what in cases:
        expect_error(await ctx.sync(body), 446, what)
    check(await ctx.exists(room), "room gone after refused destroys")
    check(not [e for e in v.handle.events if e.name in ("kicked", "destroyed")],
          f"viewer got {v.handle.events}")
    vs = (await ctx.participants(room)).get("viewers") or []
    check([x.get("viewer_id") for x in vs] == ["carol"], f"viewers: {short(vs)}")
    data = await ctx.sync({"request": "destroy", "room": room, "secret": "s3cret"})
    expect_ok(data, "destroyed", "destroy with the secret")
    await v.handle.wait_plugin("destroyed", 10)
    check(not await ctx.exists(room), "room exists after destroy")


@test()
async def test_kick_viewer(ctx):
    """A kicked viewer gets 'kicked' and leaves the list; others go on."""
    room, key, _ = await ctx.create_room(secret="s3cret")
    perf = await ctx.performer()
    await perf.go_live(room, key)
    alice = await ctx.viewer("alice")
    bob = await ctx.viewer("bob")
    await alice.join_live(room, viewer_id="alice")
    await bob.join_live(room, viewer_id="bob")
    await asyncio.gather(alice.wait_frames(15, 20), bob.wait_frames(15, 20))
    expect_error(await ctx.sync({"request": "kick", "room": room, "secret": "s3cret",
                                 "viewer_id": "nobody"}), 454, "kick an unknown viewer")
    data = await ctx.sync({"request": "kick", "room": room, "secret": "s3cret",
                           "viewer_id": "alice"})
    expect_ok(data, "success", "kick alice")
    ev = await alice.handle.wait_plugin("kicked", 10)
    check(ev.data.get("room") == room, f"kicked event: {short(ev.data)}")
    await alice.handle.wait_core("hangup", 10)
    vs = (await ctx.participants(room)).get("viewers") or []
    check([x.get("viewer_id") for x in vs] == ["bob"], f"viewers after kick: {short(vs)}")
    await alice.wait_quiet(0.6, 4.0)
    await bob.wait_frames(30, 15)
    check(not [e for e in bob.handle.events if e.name in ("kicked", "offline", "destroyed")],
          f"bob got {bob.handle.events}")
    entry = find_room(await ctx.room_list(), room)
    check(entry and entry.get("viewers") == 1, f"list entry after kick: {short(entry)}")


@test()
async def test_kick_performer(ctx):
    """A kicked performer makes the room offline; viewers get 'offline',
    keep their PeerConnection and get media again from a new performer."""
    room, key, _ = await ctx.create_room(secret="s3cret")
    perf = await ctx.performer("performerA", RED)
    await perf.go_live(room, key)
    v = await ctx.viewer()
    await v.join_live(room)
    await v.wait_frames(20, 20)
    data = await ctx.sync({"request": "kick", "room": room, "secret": "s3cret",
                           "performer": True})
    expect_ok(data, "success", "kick performer")
    await perf.handle.wait_plugin("kicked", 10)
    await perf.handle.wait_core("hangup", 10)
    ev = await v.handle.wait_plugin("offline", 10)
    check(ev.data.get("room") == room, f"offline event: {short(ev.data)}")
    await v.wait_quiet(0.6, 4.0)
    p = (await ctx.participants(room)).get("performer")
    check(p is None or p.get("live") is False, f"performer after kick: {short(p)}")
    entry = find_room(await ctx.room_list(), room)
    check(entry and entry.get("live") is False, f"list after kick: {short(entry)}")
    check(not [e for e in v.handle.events if e.kind == "hangup"],
          f"viewer's PeerConnection was closed on offline: {v.handle.events}")

    b = await ctx.performer("performerB", BLUE)
    await b.go_live(room, key)
    live = await v.handle.wait_plugin("live", 15)
    if live.jsep is not None:   # allowed by the API when codecs differ
        await v.answer(live.jsep)
    end = time.monotonic() + 15
    while not H.color_close(v.recent_color(5), BLUE):
        check(time.monotonic() < end, f"viewer colour {v.recent_color(5)} after the new performer")
        await v.wait_frames(1, 10)
    await v.wait_frames(20, 15)


@test()
async def test_destroy(ctx):
    """destroy: everyone gets 'destroyed', the room is gone."""
    room, key, _ = await ctx.create_room(secret="s3cret")
    perf = await ctx.performer()
    await perf.go_live(room, key)
    v1 = await ctx.viewer("viewer1")
    await v1.join_live(room)
    await v1.wait_frames(10, 20)
    v2 = await ctx.viewer("viewer2")   # paused viewer
    await v2.join_live(room)
    expect_ok(await v2.handle.request({"request": "pause"}), "paused", "pause")
    data = await ctx.sync({"request": "destroy", "room": room, "secret": "s3cret"})
    expect_ok(data, "destroyed", "destroy")
    check(data.get("room") == room, f"destroy reply: {short(data)}")
    for p in (perf, v1, v2):
        ev = await p.handle.wait_plugin("destroyed", 10)
        check(ev.data.get("room") == room, f"{p.label} destroyed event: {short(ev.data)}")
        await p.handle.wait_core("hangup", 10)
    check(not await ctx.exists(room), "exists says true after destroy")
    check(find_room(await ctx.room_list(), room) is None, "list still shows the room")
    expect_error(await ctx.sync({"request": "listparticipants", "room": room}), 444,
                 "listparticipants after destroy")
    expect_error(await ctx.sync({"request": "destroy", "room": room, "secret": "s3cret"}), 444,
                 "destroy twice")
    # the id can be used again
    await ctx.create_room(room=room)


@test(own_server=True, timeout=150)
async def test_permanent_room(ctx):
    """A permanent room survives a Janus restart and keeps its stream key."""
    srv = await ctx.start_server()
    room, key, data = await ctx.create_room(permanent=True, description="forever",
                                            price_per_second=7, currency="millicents")
    check(data.get("permanent") is True, f"create permanent reply: {short(data)}")
    check("stream_key" not in data, f"a given stream key was echoed back: {short(data)}")
    temp, _, data2 = await ctx.create_room()
    check(data2.get("permanent") is False, f"create reply: {short(data2)}")
    with open(srv.plugin_config_path) as f:
        cfg = f.read()
    check(room in cfg, f"permanent room {room} not saved in {srv.plugin_config_path}:\n{cfg}")
    check(temp not in cfg, f"non-permanent room {temp} saved in the config file")

    await ctx.cleanup()
    rc = srv.stop()
    check(rc == 0, f"janus exit code {rc} on SIGTERM; tail: {srv.log_tail(10)}")
    await asyncio.to_thread(srv.start)

    check(await ctx.exists(room), "permanent room does not exist after the restart")
    check(not await ctx.exists(temp), "non-permanent room exists after the restart")
    entry = find_room(await ctx.room_list(), room)
    check(entry and entry.get("description") == "forever"
          and entry.get("price_per_second") == 7 and entry.get("currency") == "millicents",
          f"list entry after restart: {short(entry)}")
    # A priced room takes only viewers with a token, and only where billing
    # is configured: this server has none, so it refuses (459).
    h = await ctx.handle()
    expect_error(await h.request({"request": "watch", "room": room}), 459,
                 "watch a priced room on a server without billing")
    # Made free (and saved so), the permanent room still works with its key.
    data = await ctx.sync({"request": "edit", "room": room, "new_price_per_second": 0, "permanent": True})
    expect_ok(data, "edited", "edit the permanent room's price")
    with open(srv.plugin_config_path) as f:
        cfg = f.read()
    check('price_per_second = "0"' in cfg, f"edited price not saved in the config file:\n{cfg}")
    perf = await ctx.performer()
    await perf.go_live(room, key)
    v = await ctx.viewer()
    await v.join_live(room)
    await v.wait_frames(20, 20)
    data = await ctx.sync({"request": "destroy", "room": room, "permanent": True})
    expect_ok(data, "destroyed", "destroy permanent")
    with open(srv.plugin_config_path) as f:
        cfg = f.read()
    check(room not in cfg, f"destroyed permanent room still in the config file:\n{cfg}")


@test()
async def test_malformed_requests(ctx):
    """Bad requests get the documented error codes and Janus survives."""
    await ctx.mgmt()
    s = ctx.sync
    expect_error(await s({}), 441, "body without request")
    expect_error(await s({"request": "nosuchrequest"}), 441, "unknown request")
    expect_error(await s({"request": 5}), 441, "request not a string")
    expect_error(await s({"request": "create", "room": 123}), 443, "room as a number")
    expect_error(await s({"request": "create", "room": "a b"}), 443, "room 'a b'")
    expect_error(await s({"request": "create", "room": "x" * 65}), 443, "room of 65 chars")
    expect_error(await s({"request": "create", "room": ""}), 443, "empty room")
    expect_error(await s({"request": "create", "room": H.rand_id(), "is_private": "yes"}), 443,
                 "is_private as a string")
    expect_error(await s({"request": "create", "room": H.rand_id(), "max_viewers": "10"}), 443,
                 "max_viewers as a string")
    expect_error(await s({"request": "create", "room": H.rand_id(), "max_viewers": -1}), 443,
                 "max_viewers negative")
    expect_error(await s({"request": "create", "room": H.rand_id(), "price_per_second": 1.5}), 443,
                 "price_per_second as a float")
    expect_error(await s({"request": "create", "room": H.rand_id(), "stream_key": "short"}), 443,
                 "stream_key of 5 bytes")
    expect_error(await s({"request": "create", "room": H.rand_id(), "currency": "$$"}), 443,
                 "bad currency")
    expect_error(await s({"request": "create", "room": H.rand_id(), "videocodec": "nosuch"}), 443,
                 "unknown video codec")
    expect_error(await s({"request": "exists"}), 442, "exists without room")
    expect_error(await s({"request": "exists", "room": ["r"]}), 443, "exists with an array room")
    # boundaries that must be accepted
    r64 = "a" * 60 + H.rand_id("", 4)[1:]
    check(len(r64) == 64, "test bug")
    await ctx.create_room(room=r64)
    room, key, _ = await ctx.create_room()
    expect_error(await s({"request": "create", "room": room}), 445, "create an existing room")
    gen = await s({"request": "create"})
    expect_ok(gen, "created", "create with no fields")
    check(isinstance(gen.get("room"), str) and gen["room"], f"generated room: {short(gen)}")
    check(isinstance(gen.get("stream_key"), str) and len(gen["stream_key"]) == 32,
          f"generated stream key not shown once (32 hex chars): {short(gen)}")

    # asynchronous requests
    v = await ctx.handle()
    ev = await v.request({"request": "watch", "room": H.rand_id("nosuch")})
    expect_error(ev, 444, "watch an unknown room")
    ev = await v.request({"request": "start"})
    check(ev.data.get("paystream") == "error" and ev.data.get("error_code") in (450, 452),
          f"start on a fresh handle without jsep: want 450 or 452, got {short(ev.data)}")
    ev = await v.request({"request": "pause"})
    expect_error(ev, 450, "pause on a handle with no role")
    ev = await v.request({"request": "unpublish"})
    expect_error(ev, 450, "unpublish on a handle with no role")

    p = await ctx.handle()
    ev = await p.request({"request": "publish", "room": room, "stream_key": key})
    expect_error(ev, 452, "publish without jsep")
    ev = await p.request({"request": "publish", "room": room, "stream_key": 12345678})
    check(ev.data.get("error_code") in (443, 452),
          f"publish with a numeric stream_key: {short(ev.data)}")
    garbage = {"type": "offer", "sdp": "this is not an SDP\r\nat all\r\n"}
    try:
        ev = await p.request({"request": "publish", "room": room, "stream_key": key}, garbage)
        expect_error(ev, 453, "publish with a garbage SDP")
    except H.JanusError as e:
        # the Janus core parses the SDP before the plugin sees it
        check(e.code == 465, f"publish with a garbage SDP: core error {e.code} {e.reason}")

    # a well-formed offer with no codec the room accepts
    room3, key3, _ = await ctx.create_room(audiocodec="g722", videocodec="vp9")
    perf = await ctx.performer()
    ev = await perf.publish(room3, key3)
    expect_error(ev, 453, "publish an offer with no accepted codec")

    # a viewer in state 'offered' sending start without a JSEP
    perf2 = await ctx.performer()
    await perf2.go_live(room, key)
    vw = await ctx.viewer()
    ev = await vw.watch(room)
    expect_ok(ev, "watching", "watch")
    check(ev.jsep and ev.jsep.get("type") == "offer", f"watch live room: {ev}")
    ev = await vw.handle.request({"request": "start"})
    expect_error(ev, 452, "start without jsep after an offer")
    ev = await vw.handle.request({"request": "publish", "room": room, "stream_key": key})
    expect_error(ev, 450, "publish on a viewer handle")
    ev = await perf2.handle.request({"request": "watch", "room": room})
    expect_error(ev, 450, "watch on a performer handle")
    # the viewer can still complete its negotiation
    await vw.answer(ev_offer(vw))
    await vw.wait_frames(10, 20)

    check(ctx.server.alive(), ctx.server.death_reason() or "janus died")
    room4, _, _ = await ctx.create_room(description="after the abuse")
    check(find_room(await ctx.room_list(), room4), "list after malformed requests")


def ev_offer(viewer):
    offers = [e.jsep for e in viewer.handle.events if e.jsep and e.jsep.get("type") == "offer"]
    check(offers, f"{viewer.label}: no offer seen")
    return offers[-1]


@test()
async def test_admin_api(ctx):
    """The synchronous requests work through the Admin API message_plugin."""
    room = H.rand_id("adm")
    key = H.rand_id("key", 16)
    data = await H.admin_message({"request": "create", "room": room, "stream_key": key,
                                  "description": "via admin"})
    expect_ok(data, "created", "admin create")
    check(data.get("room") == room, f"admin create reply: {short(data)}")
    data = await H.admin_message({"request": "list"})
    expect_ok(data, "success", "admin list")
    entry = find_room(data.get("list") or [], room)
    check(entry and entry.get("description") == "via admin" and entry.get("live") is False,
          f"admin list entry: {short(entry)}")
    data = await H.admin_message({"request": "listparticipants", "room": room})
    expect_ok(data, "participants", "admin listparticipants")
    check(data.get("performer") is None and data.get("viewers") == [],
          f"admin listparticipants of an empty room: {short(data)}")
    data = await H.admin_message({"request": "exists", "room": room})
    check(data.get("exists") is True, f"admin exists: {short(data)}")

    perf = await ctx.performer()
    await perf.go_live(room, key, display="star")
    v = await ctx.viewer()
    await v.join_live(room, viewer_id="fan1", display="Fan")
    data = await H.admin_message({"request": "listparticipants", "room": room})
    p = data.get("performer") or {}
    check(p.get("display") == "star" and p.get("live") is True, f"admin performer: {short(data)}")
    vs = data.get("viewers") or []
    check(len(vs) == 1 and vs[0].get("viewer_id") == "fan1" and vs[0].get("display") == "Fan"
          and isinstance(vs[0].get("joined"), int), f"admin viewers: {short(vs)}")
    data = await H.admin_message({"request": "nosuchrequest"})
    expect_error(data, 441, "admin unknown request")
    try:
        await H.admin_message({"request": "list"}, admin_secret="wrong")
        raise H.TestFailure("Admin API accepted a wrong admin_secret")
    except H.JanusError:
        pass
    data = await H.admin_message({"request": "destroy", "room": room})
    expect_ok(data, "destroyed", "admin destroy")
    await v.handle.wait_plugin("destroyed", 10)
    await perf.handle.wait_plugin("destroyed", 10)
    data = await H.admin_message({"request": "exists", "room": room})
    check(data.get("exists") is False, f"admin exists after destroy: {short(data)}")


@test(own_server=True)
async def test_admin_key(ctx):
    """With admin_key in the plugin config, create needs it (446)."""
    await ctx.start_server('general: {\n\tadmin_key = "supersecretkey"\n}\n')
    room = H.rand_id("ak")
    body = {"request": "create", "room": room}
    expect_error(await ctx.sync(body), 446, "create without admin_key")
    expect_error(await ctx.sync(dict(body, admin_key="wrong")), 446, "create with a wrong admin_key")
    expect_error(await H.admin_message(body), 446, "admin create without admin_key")
    expect_error(await H.admin_message(dict(body, admin_key="nope")), 446,
                 "admin create with a wrong admin_key")
    check(not await ctx.exists(room), "room created despite 446")
    expect_ok(await ctx.sync(dict(body, admin_key="supersecretkey")), "created",
              "create with admin_key")
    room2 = H.rand_id("ak")
    expect_ok(await H.admin_message({"request": "create", "room": room2,
                                     "admin_key": "supersecretkey"}), "created",
              "admin create with admin_key")
    check(await ctx.exists(room) and await ctx.exists(room2), "rooms missing")


# Metering, billing and tips (their own Janus each, with a billing service)
import billing_tests  # noqa: E402

TESTS.extend(billing_tests.TESTS)

# Event handler notifications and the spool's limits (own Janus each)
import events_tests  # noqa: E402

TESTS.extend(events_tests.TESTS)

# The spool on a disk that fills up (a tmpfs of the test's; own Janus each)
import disk_tests  # noqa: E402

TESTS.extend(disk_tests.TESTS)

# How a paying viewer's session ends or goes on: kick, destroy, hang-up,
# refresh, tick_notify (own Janus each, with the event handler)
import lifecycle_tests  # noqa: E402

TESTS.extend(lifecycle_tests.TESTS)

# Delivery of usage and tips: failure events, backoff, timeouts, tips sent at
# once and across a SIGKILL (own Janus each, with the event handler)
import delivery_tests  # noqa: E402

TESTS.extend(delivery_tests.TESTS)

# Many offers at once: a room with many waiting viewers goes live (own Janus
# each, with a delayed STUN server)
import offers_tests  # noqa: E402

TESTS.extend(offers_tests.TESTS)


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------

class Runner:
    def __init__(self, plugin, preload, keep):
        self.plugin = plugin
        self.preload = preload
        self.keep = keep
        self.root = tempfile.mkdtemp(prefix="paystream-it-")
        # a private copy: a rebuild during the run must not change the plugin
        # under test between two Janus starts
        self.plugin = os.path.join(self.root, "libjanus_paystream.so")
        shutil.copyfile(plugin, self.plugin)
        self.shared = None
        self.owned = []     # (server, log offsets) started for the current test
        self.shutdown_problems = []

    def new_server(self, name, plugin_config=None, workdir=None, **server_kw):
        return H.JanusServer(workdir or os.path.join(self.root, name), self.plugin,
                             plugin_config, self.preload, **server_kw)

    async def get_shared(self):
        if self.shared is not None and not self.shared.alive():
            self.shared.stop()   # died during an earlier test (reported there)
            self.shared = None
        if self.shared is None:
            n = sum(1 for d in os.listdir(self.root) if d.startswith("shared"))
            srv = self.new_server(f"shared{n}")
            try:
                await asyncio.to_thread(srv.start)
            except BaseException:
                srv.stop()
                raise
            self.shared = srv
        return self.shared

    def stop_shared(self):
        srv, self.shared = self.shared, None
        if srv is None:
            return
        alive = srv.alive()
        since = srv.log_size()
        rc = srv.stop()
        rep = srv.sanitizer_report(since)
        if alive and (rc != 0 or rep):
            self.shutdown_problems.append(
                f"shared janus ({srv.workdir}) exit code {rc} on SIGTERM; {rep or ''}{srv.crash_report()}")

    async def own_server(self, ctx, plugin_config, workdir, **server_kw):
        self.stop_shared()
        srv = self.new_server(f"{ctx.name}{len(self.owned)}", plugin_config, workdir,
                              **server_kw)
        self.owned.append((srv, (0, 0)))
        await asyncio.to_thread(srv.start)
        ctx.server = srv
        return srv

    async def run_one(self, name, fn, own, timeout):
        self.owned = []
        ctx = Ctx(self, None)
        ctx.name = name
        err = None
        t0 = time.monotonic()
        try:
            if own:
                self.stop_shared()
            else:
                srv = await self.get_shared()
                self.owned.append((srv, srv.log_size()))
                ctx.server = srv
            await asyncio.wait_for(fn(ctx), timeout)
        except asyncio.TimeoutError:
            err = f"test timed out after {timeout}s"
        except H.TestFailure as e:
            err = str(e)
        except H.JanusDied as e:
            err = str(e)
        except H.JanusError as e:
            err = f"{e} ({short(e.resp)})"
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
        try:
            await asyncio.wait_for(ctx.cleanup(), 20)
        except Exception:  # noqa: BLE001
            pass
        for s, since in self.owned:
            dead = s.death_reason() if s.proc is not None else None
            if dead:
                err = (err + "; " if err else "") + dead
            if s is not self.shared and s.proc is not None:
                rc = s.stop()   # a private server: stop it before reading its logs
                if rc not in (0, None) and not dead:
                    err = (err + "; " if err else "") + f"janus exited with code {rc} on SIGTERM"
                if rc not in (0, None) or dead:
                    crash = s.crash_report()
                    if crash:
                        err += "\n" + crash
            rep = s.sanitizer_report(since)
            if rep:
                err = (err + "; " if err else "") + "sanitizer report in janus output:\n" + rep
        if err:
            for s, since in self.owned:
                sys.stderr.write(f"--- {name}: janus log since test start ({s.log_path}) ---\n")
                sys.stderr.write(tail_since(s.log_path, since[0]) + "\n")
        return err, time.monotonic() - t0


def tail_since(path, off, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(off)
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


async def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    plugin = os.environ.get("PAYSTREAM_PLUGIN") or os.path.join(
        here, "..", "..", "plugin", ".libs", "libjanus_paystream.so")
    plugin = os.path.abspath(plugin)
    preload = os.environ.get("PAYSTREAM_LD_PRELOAD") or None
    keep = os.environ.get("PAYSTREAM_IT_KEEP") == "1"
    selected = [t for t in TESTS if not argv or any(a in t[0] for a in argv)]
    if not os.path.exists(plugin):
        print(f"integration: plugin not found: {plugin} (set PAYSTREAM_PLUGIN)")
        print(f"integration: 0 passed, {len(selected)} failed")
        return 1
    if not selected:
        print(f"integration: no test matches {argv}")
        print("integration: 0 passed, 0 failed")
        return 1
    runner = Runner(plugin, preload, keep)
    passed = failed = 0
    t_all = time.monotonic()
    try:
        for name, fn, own, timeout in selected:
            err, dt = await runner.run_one(name, fn, own, timeout)
            if err is None:
                passed += 1
                print(f"PASS {name} ({dt:.1f}s)", flush=True)
            else:
                failed += 1
                one = " | ".join(l for l in err.splitlines() if l.strip())
                if len(one) > 4000:
                    one = one[:4000] + "..."
                print(f"FAIL {name}: {one}", flush=True)
        runner.stop_shared()
        for prob in runner.shutdown_problems:
            # errors seen only when the shared janus was stopped
            failed += 1
            one = " | ".join(l for l in prob.splitlines() if l.strip())[:4000]
            print(f"FAIL janus_shutdown: {one}", flush=True)
    finally:
        runner.stop_shared()
        billing_tests.shutdown()
        if failed or keep:
            sys.stderr.write(f"integration: janus folders and logs kept in {runner.root}\n")
        else:
            shutil.rmtree(runner.root, ignore_errors=True)
    sys.stderr.write(f"integration: took {time.monotonic() - t_all:.0f}s\n")
    print(f"integration: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
