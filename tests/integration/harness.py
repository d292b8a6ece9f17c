"""Integration test harness for the paystream Janus plugin.

Pieces:
  * JanusServer: a private Janus 1.1.2 process with its own config folder,
    only the plugin under test and the HTTP transport loaded.
  * JanusSession / JanusHandle: a client of the Janus REST API (HTTP
    transport), with one long-poll thread per session that routes events to
    the handles' event lists.
  * admin_message(): the Admin API message_plugin request.
  * Performer / Viewer: real WebRTC peers built on aiortc.

Everything here must run inside the private network namespace set up by
./run (Janus never gathers ICE candidates on loopback).
"""

import asyncio
import fractions
import json
import os
import random
import resource
import shutil
import signal
import string
import subprocess
import threading
import time
import urllib.error
import urllib.request

import av
import numpy

from aiortc import (RTCPeerConnection, RTCSessionDescription,
                    VideoStreamTrack, MediaStreamTrack)
from aiortc.mediastreams import MediaStreamError

JANUS_BIN = os.environ.get("JANUS_BIN", "/usr/bin/janus")
JANUS_LIBDIR = "/usr/lib/x86_64-linux-gnu/janus"
HTTP_URL = "http://127.0.0.1:8088/janus"
ADMIN_URL = "http://127.0.0.1:7088/admin"
ADMIN_SECRET = "paystream-it-admin-secret"
PLUGIN = "janus.plugin.paystream"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer")


class TestFailure(Exception):
    """An assertion of a test failed."""


class JanusDied(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def rand_id(prefix="it", n=8):
    return prefix + "-" + "".join(
        random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def txid():
    return "".join(random.choice(string.ascii_letters) for _ in range(12))


def short(obj, limit=400):
    s = json.dumps(obj, default=str) if not isinstance(obj, str) else obj
    return s if len(s) <= limit else s[:limit] + "..."


# ---------------------------------------------------------------------------
# Janus process
# ---------------------------------------------------------------------------

def _allow_core_dump():
    """In Janus's child process: let a crash leave a core file (see
    JanusServer.crash_report)."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


class JanusServer:
    """A private Janus instance.  `workdir` holds every config file, the
    plugin and transport folders (symlinks) and the logs, so a restart with
    the same workdir keeps whatever the plugin saved in its config file."""

    def __init__(self, workdir, plugin_so, plugin_config=None,
                 ld_preload=None, plugin_file=None, events_backend=None,
                 events_mask="plugins", websockets=False, stun=None):
        self.workdir = workdir
        # stun: a StunServer Janus is told to use (nat.stun_server/stun_port):
        # every ICE gathering then waits for its (delayed) answer
        self.stun = stun
        # websockets: also Janus's WebSockets transport on 127.0.0.1:8188
        # (janus.js in the browser tests prefers it)
        self.websockets = websockets
        # events_backend: a URL; Janus's stock HTTP event handler (sampleevh)
        # is loaded and POSTs the events `events_mask` selects there
        self.events_backend = events_backend
        self.events_mask = events_mask
        self.plugin_so = os.path.abspath(plugin_so)
        self.plugin_file = plugin_file or "libjanus_paystream.so"
        self.ld_preload = ld_preload
        self.proc = None
        self.log_path = os.path.join(workdir, "janus.log")
        self.err_path = os.path.join(workdir, "janus.stderr")
        self._log = None
        self._err = None
        self.starts = 0
        os.makedirs(workdir, exist_ok=True)
        self._write_configs(plugin_config)

    # -- configuration ---------------------------------------------------
    def _write_configs(self, plugin_config):
        wd = self.workdir
        for sub in ("plugins", "transports", "events", "loggers"):
            os.makedirs(os.path.join(wd, sub), exist_ok=True)
        link = os.path.join(wd, "plugins", self.plugin_file)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(self.plugin_so, link)
        transports = ["libjanus_http.so"] + (["libjanus_websockets.so"] if self.websockets else [])
        for transport in transports:
            tlink = os.path.join(wd, "transports", transport)
            if not os.path.lexists(tlink):
                os.symlink(os.path.join(JANUS_LIBDIR, "transports", transport), tlink)
        if self.websockets:
            with open(os.path.join(wd, "janus.transport.websockets.jcfg"), "w") as f:
                f.write('general: {\n\tjson = "plain"\n\tws = true\n\tws_port = 8188\n\tws_ip = "127.0.0.1"\n'
                        '\twss = false\n}\nadmin: {\n\tadmin_ws = false\n\tadmin_wss = false\n}\ncors: {\n}\n')
        if self.events_backend:
            elink = os.path.join(wd, "events", "libjanus_sampleevh.so")
            if not os.path.lexists(elink):
                os.symlink(os.path.join(JANUS_LIBDIR, "events",
                                        "libjanus_sampleevh.so"), elink)
            with open(os.path.join(wd, "janus.eventhandler.sampleevh.jcfg"), "w") as f:
                f.write(f"""general: {{
	enabled = true
	events = "{self.events_mask}"
	grouping = true
	json = "plain"
	backend = "{self.events_backend}"
	max_retransmissions = 5
	retransmissions_backoff = 100
}}
""")
        with open(os.path.join(wd, "janus.jcfg"), "w") as f:
            f.write(f"""general: {{
	configs_folder = "{wd}"
	plugins_folder = "{wd}/plugins"
	transports_folder = "{wd}/transports"
	events_folder = "{wd}/events"
	loggers_folder = "{wd}/loggers"
	debug_level = 4
	debug_timestamps = true
	debug_colors = false
	admin_secret = "{ADMIN_SECRET}"
	session_timeout = 300
	protected_folders = [ "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr", "/var" ]
}}
certificates: {{
}}
media: {{
	rtp_port_range = "20000-40000"
}}
nat: {{
	nice_debug = false
	ice_enforce_list = "v0"
{self._stun_config()}}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
	broadcast = {"true" if self.events_backend else "false"}
}}
""")
        with open(os.path.join(wd, "janus.transport.http.jcfg"), "w") as f:
            f.write("""general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = 8088
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_base_path = "/admin"
	admin_http = true
	admin_port = 7088
	admin_ip = "127.0.0.1"
	admin_https = false
}
cors: {
}
""")
        if plugin_config is None:
            plugin_config = "general: {\n}\n"
        with open(os.path.join(wd, "janus.plugin.paystream.jcfg"), "w") as f:
            f.write(plugin_config)

    def _stun_config(self):
        if self.stun is None:
            return ""
        return f'\tstun_server = "{self.stun.host}"\n\tstun_port = {self.stun.port}\n'

    @property
    def plugin_config_path(self):
        return os.path.join(self.workdir, "janus.plugin.paystream.jcfg")

    # -- life cycle ------------------------------------------------------
    def start(self, deadline=20.0):
        env = dict(os.environ)
        if self.ld_preload:
            prev = env.get("LD_PRELOAD")
            env["LD_PRELOAD"] = self.ld_preload + (":" + prev if prev else "")
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._log = open(self.log_path, "ab")
        self._err = open(self.err_path, "ab")
        self.starts += 1
        marker = f"\n===== start #{self.starts} at {time.ctime()} =====\n".encode()
        self._log.write(marker)
        self._log.flush()
        self._err.write(marker)
        self._err.flush()
        self.proc = subprocess.Popen(
            [JANUS_BIN, "-C", os.path.join(self.workdir, "janus.jcfg"),
             "-F", self.workdir],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._err,
            env=env, cwd=self.workdir, start_new_session=True, preexec_fn=_allow_core_dump)
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise JanusDied(f"janus exited with code {self.proc.returncode} "
                                f"during startup; log tail:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(HTTP_URL + "/info", timeout=2) as r:
                    info = json.loads(r.read())
                if info.get("janus") == "server_info":
                    plugins = info.get("plugins", {})
                    if PLUGIN not in plugins and self.plugin_file == "libjanus_paystream.so":
                        self.stop()
                        raise JanusDied(f"janus is up but {PLUGIN} is not loaded; "
                                        f"plugins={list(plugins)}; log tail:\n{self.log_tail()}")
                    self.info = info
                    return info
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                last = e
            time.sleep(0.1)  # readiness poll interval, bounded by the deadline
        self.stop()
        raise JanusDied(f"janus not ready after {deadline}s ({last}); log tail:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _exited(self, rc):
        """Janus has exited with rc: forget the process, close its log files."""
        self.proc = None
        for f in (self._log, self._err):
            if f:
                f.close()
        self._log = self._err = None
        return rc

    def kill9(self, deadline=10.0):
        """SIGKILL (a crash: no clean-up by the plugin); returns the exit code."""
        if self.proc is None:
            return None
        self.proc.kill()
        rc = self.proc.wait(timeout=deadline)
        return self._exited(rc)

    def stop(self, deadline=10.0):
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                rc = self.proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(timeout=deadline)
        return self._exited(rc)

    def crash_report(self, lines=100):
        """After Janus died of a signal: the threads' backtraces from its core
        file (in the workdir where the kernel's core_pattern is a plain
        name), read with gdb; the core is removed. Empty when there is none."""
        cores = sorted(f for f in os.listdir(self.workdir) if f == "core" or f.startswith("core."))
        if not cores or not shutil.which("gdb"):
            return ""
        path = os.path.join(self.workdir, cores[-1])
        try:
            # the crashing thread first, then every thread
            out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "bt 20", "-ex", "thread apply all bt 8",
                                  JANUS_BIN, path],
                                 capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.SubprocessError) as e:
            out = f"gdb failed: {e}"
        finally:
            os.unlink(path)
        keep = [ln for ln in out.splitlines() if ln.startswith(("Thread", "#", "Program terminated"))]
        return "backtraces from the core file:\n" + "\n".join(keep[:lines])

    def death_reason(self):
        if self.proc is None:
            return "janus is not running"
        rc = self.proc.poll()
        if rc is None:
            return None
        return (f"janus died (exit code {rc}); log tail:\n{self.log_tail()}"
                f"\nstderr tail:\n{self.err_tail()}")

    # -- logs ------------------------------------------------------------
    def log_size(self):
        sizes = []
        for p in (self.log_path, self.err_path):
            try:
                sizes.append(os.path.getsize(p))
            except OSError:
                sizes.append(0)
        return tuple(sizes)

    def sanitizer_report(self, since=(0, 0)):
        """Return the first sanitizer report found after offsets `since`."""
        for p, off in zip((self.log_path, self.err_path), since):
            try:
                with open(p, "rb") as f:
                    f.seek(off)
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for m in SANITIZER_MARKERS:
                i = text.find(m)
                if i >= 0:
                    start = text.rfind("\n", 0, max(0, i - 200)) + 1
                    return text[start:start + 3000]
        return None

    def _tail(self, path, lines):
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 20000))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])

    def log_tail(self, lines=25):
        return self._tail(self.log_path, lines)

    def err_tail(self, lines=25):
        return self._tail(self.err_path, lines)

    def log_grep(self, needle, since=0, limit=20):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [l for l in data.splitlines() if needle in l][:limit]


# ---------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------

def _post(url, payload, timeout=10):
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _get(url, timeout=40):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


async def apost(url, payload, timeout=10):
    return await asyncio.to_thread(_post, url, payload, timeout)


class JanusError(Exception):
    """A Janus core error (janus: error), not a plugin error."""

    def __init__(self, resp):
        self.resp = resp
        err = resp.get("error", {})
        self.code = err.get("code")
        self.reason = err.get("reason")
        super().__init__(f"janus core error {self.code}: {self.reason}")


async def admin_message(request, admin_secret=ADMIN_SECRET, timeout=10):
    """Admin API message_plugin; returns the plugin's response object."""
    payload = {"janus": "message_plugin", "plugin": PLUGIN,
               "request": request, "transaction": txid()}
    if admin_secret is not None:
        payload["admin_secret"] = admin_secret
    resp = await apost(ADMIN_URL, payload, timeout)
    if resp.get("janus") != "success":
        raise JanusError(resp)
    return resp.get("response")


class Event:
    def __init__(self, raw, t=None):
        self.raw = raw
        self.kind = raw.get("janus")
        pd = raw.get("plugindata") or {}
        self.data = pd.get("data")
        self.jsep = raw.get("jsep")
        self.transaction = raw.get("transaction")
        # when the long-poll thread received it (not when the busy event
        # loop got round to it): what timing measurements should use
        self.t = t if t is not None else time.monotonic()

    @property
    def name(self):
        return (self.data or {}).get("paystream")

    def __repr__(self):
        if self.kind == "event":
            s = f"event{short(self.data, 300)}"
            if self.jsep:
                s += f"+jsep({self.jsep.get('type')})"
            return s
        return f"{self.kind}{short({k: v for k, v in self.raw.items() if k not in ('session_id', 'sender', 'janus')}, 200)}"


class JanusSession:
    def __init__(self, server=None):
        self.server = server
        self.id = None
        self.handles = {}
        self._stop = threading.Event()
        self._thread = None
        self.loop = None
        self.poll_error = None

    async def create(self):
        self.loop = asyncio.get_running_loop()
        resp = await apost(HTTP_URL, {"janus": "create", "transaction": txid()})
        if resp.get("janus") != "success":
            raise JanusError(resp)
        self.id = resp["data"]["id"]
        self._thread = threading.Thread(target=self._poll, daemon=True,
                                        name=f"longpoll-{self.id}")
        self._thread.start()
        return self

    def _poll(self):
        url = f"{HTTP_URL}/{self.id}?maxev=10"
        while not self._stop.is_set():
            try:
                resp = _get(url, timeout=40)
            except Exception as e:  # noqa: BLE001
                if self._stop.is_set():
                    return
                self.poll_error = e
                if self.server is not None and not self.server.alive():
                    return
                self._stop.wait(0.2)
                continue
            events = resp if isinstance(resp, list) else [resp]
            for ev in events:
                if ev.get("janus") == "keepalive":
                    continue
                sender = ev.get("sender")
                h = self.handles.get(sender)
                if h is not None:
                    self.loop.call_soon_threadsafe(h._deliver, ev, time.monotonic())

    async def attach(self, plugin=PLUGIN):
        resp = await apost(f"{HTTP_URL}/{self.id}",
                           {"janus": "attach", "plugin": plugin,
                            "transaction": txid()})
        if resp.get("janus") != "success":
            raise JanusError(resp)
        h = JanusHandle(self, resp["data"]["id"])
        self.handles[h.id] = h
        return h

    async def keepalive(self):
        resp = await apost(f"{HTTP_URL}/{self.id}",
                           {"janus": "keepalive", "transaction": txid()})
        if resp.get("janus") != "ack":
            raise JanusError(resp)

    async def destroy(self):
        self._stop.set()
        if self.id is None:
            return
        try:
            await apost(f"{HTTP_URL}/{self.id}",
                        {"janus": "destroy", "transaction": txid()}, timeout=5)
        except Exception:  # noqa: BLE001
            pass


class JanusHandle:
    def __init__(self, session, hid):
        self.session = session
        self.id = hid
        self.events = []
        self._consumed = set()
        self._new = asyncio.Event()

    @property
    def url(self):
        return f"{HTTP_URL}/{self.session.id}/{self.id}"

    def _deliver(self, raw, t=None):
        self.events.append(Event(raw, t))
        self._new.set()

    async def send(self, body, jsep=None, timeout=10):
        """Send a plugin message.  Returns ('sync', data) for a synchronous
        plugin reply or ('ack', transaction) for an asynchronous one."""
        tx = txid()
        msg = {"janus": "message", "body": body, "transaction": tx}
        if jsep is not None:
            msg["jsep"] = jsep
        resp = await apost(self.url, msg, timeout)
        kind = resp.get("janus")
        if kind == "success":
            return "sync", (resp.get("plugindata") or {}).get("data")
        if kind == "ack":
            return "ack", tx
        raise JanusError(resp)

    async def request(self, body, jsep=None, timeout=10):
        """Send and return the plugin's answer as an Event (synchronous
        replies are wrapped in an Event with no jsep)."""
        kind, val = await self.send(body, jsep, timeout)
        if kind == "sync":
            return Event({"janus": "success", "plugindata": {"data": val}})
        return await self.wait_event(lambda e: e.transaction == val, timeout,
                                     what=f"answer to {short(body, 150)}")

    async def sync(self, body, timeout=10):
        """A request that must be answered synchronously; returns data."""
        kind, val = await self.send(body, None, timeout)
        check(kind == "sync", f"expected a synchronous reply to {short(body)}, got an ack")
        return val

    def plugin_events(self):
        return [e for e in self.events if e.kind == "event"]

    async def wait_event(self, pred, timeout=10, what=None, kind="event", consume=True):
        """First not yet consumed event of `kind` (default: plugin events)
        matching pred (consume=False: left for a later wait).  Raises
        TestFailure listing what was seen."""
        end = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if i in self._consumed or (kind and e.kind != kind):
                    continue
                try:
                    ok = pred(e)
                except Exception:  # noqa: BLE001
                    ok = False
                if ok:
                    if consume:
                        self._consumed.add(i)
                    return e
            left = end - time.monotonic()
            if left <= 0:
                srv = self.session.server
                dead = srv.death_reason() if srv else None
                raise TestFailure(
                    f"handle {self.id}: timed out after {timeout}s waiting for "
                    f"{what or 'event'}; saw {self.events}"
                    + (f"; {dead}" if dead else ""))
            # nothing matched: sleep until a new event arrives (no await
            # between the scan above and clear(), so none can be missed)
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass

    async def wait_plugin(self, name, timeout=10):
        return await self.wait_event(lambda e: e.name == name, timeout,
                                     what=f"paystream '{name}' event")

    async def wait_core(self, kind, timeout=10):
        return await self.wait_event(lambda e: True, timeout,
                                     what=f"core '{kind}' event", kind=kind)

    async def hangup(self):
        resp = await apost(self.url, {"janus": "hangup", "transaction": txid()})
        if resp.get("janus") not in ("success", "ack"):
            raise JanusError(resp)

    async def detach(self):
        resp = await apost(self.url, {"janus": "detach", "transaction": txid()})
        self.session.handles.pop(self.id, None)
        if resp.get("janus") != "success":
            raise JanusError(resp)


def expect_error(ev_or_data, code, what):
    data = ev_or_data.data if isinstance(ev_or_data, Event) else ev_or_data
    check(isinstance(data, dict) and data.get("paystream") == "error",
          f"{what}: expected paystream error {code}, got {short(data)}")
    check(data.get("error_code") == code,
          f"{what}: expected error_code {code}, got {data.get('error_code')} "
          f"({data.get('error')})")
    check(isinstance(data.get("error"), str) and data.get("error"),
          f"{what}: error {code} has no readable 'error' text: {short(data)}")


def expect_ok(ev_or_data, name, what):
    data = ev_or_data.data if isinstance(ev_or_data, Event) else ev_or_data
    check(isinstance(data, dict) and data.get("paystream") == name,
          f"{what}: expected paystream '{name}', got {short(data)}")
    return data


# ---------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------

class PatternVideoTrack(VideoStreamTrack):
    """320x240 frames: a solid background colour (identifies the performer)
    with a white bar moving across it."""

    def __init__(self, color=(200, 30, 30), width=320, height=240):
        super().__init__()
        self.color = color
        self.w, self.h = width, height
        self.n = 0
        self.base = numpy.zeros((height, width, 3), numpy.uint8)
        self.base[:, :] = color

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = self.base.copy()
        x = (self.n * 4) % (self.w - 16)
        img[:, x:x + 16] = 255
        self.n += 1
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class SineAudioTrack(MediaStreamTrack):
    """48 kHz mono s16 sine tone in 20 ms frames."""
    kind = "audio"

    def __init__(self, freq=440):
        super().__init__()
        self.freq = freq
        self.rate = 48000
        self.samples = 960
        self._start = None
        self._ts = 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._ts += self.samples
            wait = self._start + self._ts / self.rate - time.time()
            if wait > 0:
                await asyncio.sleep(wait)  # real-time pacing of the generator
        t = (numpy.arange(self._ts, self._ts + self.samples) / self.rate)
        pcm = (numpy.sin(2 * numpy.pi * self.freq * t) * 8000).astype(numpy.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._ts
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


async def wait_ice_complete(pc, timeout=10):
    end = time.monotonic() + timeout
    while pc.iceGatheringState != "complete":
        check(time.monotonic() < end, "ICE gathering did not complete")
        await asyncio.sleep(0.05)


def jsep_of(pc):
    d = pc.localDescription
    return {"type": d.type, "sdp": d.sdp, "trickle": False}


class Peer:
    def __init__(self, handle, label):
        self.handle = handle
        self.label = label
        self.pc = None
        self.closed = False

    async def wait_connected(self, timeout=15):
        end = time.monotonic() + timeout
        while True:
            st = self.pc.connectionState if self.pc else None
            if st == "connected":
                return
            check(st != "failed", f"{self.label}: PeerConnection failed")
            check(time.monotonic() < end,
                  f"{self.label}: PeerConnection not connected after {timeout}s "
                  f"(state {st}, ice {self.pc.iceConnectionState if self.pc else None}); "
                  f"handle events {self.handle.events}")
            await asyncio.sleep(0.05)

    async def close(self):
        if self.pc is not None and not self.closed:
            self.closed = True
            try:
                await asyncio.wait_for(self.pc.close(), 5)
            except Exception:  # noqa: BLE001
                pass


class Performer(Peer):
    def __init__(self, handle, label="performer", color=(200, 30, 30),
                 audio=True, video=True):
        super().__init__(handle, label)
        self.color = color
        self.audio = audio
        self.video = video
        self.video_track = None
        self.pli_count = 0

    async def wait_frames_sent(self, n, timeout=10):
        end = time.monotonic() + timeout
        while self.video_track is None or self.video_track.n < n:
            check(time.monotonic() < end,
                  f"{self.label}: video track produced fewer than {n} frames in {timeout}s")
            await asyncio.sleep(0.05)

    async def wait_pli(self, since, timeout, what):
        """Wait until more than `since` keyframe requests were received."""
        end = time.monotonic() + timeout
        while self.pli_count <= since:
            check(time.monotonic() < end,
                  f"{self.label}: no keyframe request (RTCP PLI) reached the performer "
                  f"within {timeout}s {what}")
            await asyncio.sleep(0.05)

    async def make_offer(self):
        if self.pc is not None and not self.closed:
            await self.close()      # a new attempt on the same handle
        self.closed = False
        self.pc = RTCPeerConnection()
        if self.audio:
            self.pc.addTrack(SineAudioTrack())
        if self.video:
            self.video_track = PatternVideoTrack(self.color)
            sender = self.pc.addTrack(self.video_track)
            # count the keyframe requests (RTCP PLI) aiortc's sender gets
            orig = sender._send_keyframe

            def counted():
                self.pli_count += 1
                orig()
            sender._send_keyframe = counted
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        await wait_ice_complete(self.pc)
        return jsep_of(self.pc)

    async def publish(self, room, stream_key, display=None, takeover=None,
                      extra=None, timeout=15):
        """publish; returns the answer event (published or error)."""
        jsep = await self.make_offer()
        body = {"request": "publish", "room": room}
        if stream_key is not None:       # None: publish with a token (extra)
            body["stream_key"] = stream_key
        if display is not None:
            body["display"] = display
        if takeover is not None:
            body["takeover"] = takeover
        if extra:
            body.update(extra)
        ev = await self.handle.request(body, jsep, timeout)
        if ev.name != "published":
            await self.close()      # refused: this PeerConnection is dead
        if ev.name == "published":
            check(ev.jsep and ev.jsep.get("type") == "answer",
                  f"{self.label}: 'published' without a JSEP answer: {ev}")
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=ev.jsep["sdp"], type="answer"))
        return ev

    async def go_live(self, room, stream_key, **kw):
        ev = await self.publish(room, stream_key, **kw)
        expect_ok(ev, "published", f"{self.label} publish")
        await self.wait_connected()
        await self.handle.wait_core("webrtcup", 15)
        return ev


class Viewer(Peer):
    def __init__(self, handle, label="viewer"):
        super().__init__(handle, label)
        self.video_frames = []   # (monotonic time, mean rgb)
        self.audio_frames = 0
        self.tracks = []
        self._tasks = []
        self.offers = 0
        self.viewer_id = None
        self._changed = asyncio.Event()

    @property
    def nframes(self):
        return len(self.video_frames)

    def _on_track(self, track):
        self.tracks.append(track)
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track):
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    img = frame.to_ndarray(format="rgb24")[::8, ::8]
                    self.video_frames.append(
                        (time.monotonic(), tuple(img.reshape(-1, 3).mean(axis=0))))
                else:
                    self.audio_frames += 1
                self._changed.set()
        except (MediaStreamError, asyncio.CancelledError):
            return
        except Exception:  # noqa: BLE001
            return

    async def watch(self, room, pin=None, display=None, viewer_id=None,
                    timeout=10, token=None):
        body = {"request": "watch", "room": room}
        if token is not None:
            body["token"] = token
        if pin is not None:
            body["pin"] = pin
        if display is not None:
            body["display"] = display
        if viewer_id is not None:
            body["viewer_id"] = viewer_id
        ev = await self.handle.request(body, None, timeout)
        if ev.name == "watching":
            self.viewer_id = ev.data.get("viewer_id")
        return ev

    async def answer(self, offer_jsep, timeout=10):
        """Answer an offer with `start`; returns the 'started' event."""
        check(offer_jsep and offer_jsep.get("type") == "offer",
              f"{self.label}: expected a JSEP offer, got {short(offer_jsep)}")
        self.offers += 1
        if self.pc is None:
            self.pc = RTCPeerConnection()
            self.pc.on("track", self._on_track)
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=offer_jsep["sdp"], type="offer"))
        ans = await self.pc.createAnswer()
        await self.pc.setLocalDescription(ans)
        await wait_ice_complete(self.pc)
        ev = await self.handle.request({"request": "start"}, jsep_of(self.pc),
                                       timeout)
        expect_ok(ev, "started", f"{self.label} start")
        return ev

    async def join_live(self, room, pin=None, display=None, viewer_id=None,
                        token=None):
        ev = await self.watch(room, pin=pin, display=display, viewer_id=viewer_id,
                              token=token)
        data = expect_ok(ev, "watching", f"{self.label} watch")
        check(data.get("status") == "live",
              f"{self.label}: watch on a live room gave status {data.get('status')}")
        await self.answer(ev.jsep)
        await self.wait_connected()
        return ev

    async def wait_frames(self, n, timeout=15, audio_min=0):
        """Wait until n more video frames (and audio_min more audio frames)
        than now have been decoded."""
        v0, a0 = self.nframes, self.audio_frames
        end = time.monotonic() + timeout
        while self.nframes < v0 + n or self.audio_frames < a0 + audio_min:
            left = end - time.monotonic()
            if left <= 0:
                srv = self.handle.session.server
                dead = srv.death_reason() if srv else None
                raise TestFailure(
                    f"{self.label}: got {self.nframes - v0}/{n} video and "
                    f"{self.audio_frames - a0}/{audio_min} audio frames in "
                    f"{timeout}s (pc {self.pc.connectionState if self.pc else None}, "
                    f"tracks {[t.kind for t in self.tracks]}); handle events "
                    f"{self.handle.events}" + (f"; {dead}" if dead else ""))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass

    async def wait_quiet(self, quiet=0.6, deadline=4.0):
        """Wait until no video frame arrived for `quiet` seconds; fail if
        frames keep coming until the deadline.  Returns the frame count."""
        end = time.monotonic() + deadline
        while True:
            last = self.video_frames[-1][0] if self.video_frames else 0
            now = time.monotonic()
            if now - last >= quiet:
                return self.nframes
            check(now < end,
                  f"{self.label}: video frames still arriving {deadline}s after "
                  f"the request that should have stopped them "
                  f"({self.nframes} frames so far)")
            await asyncio.sleep(0.05)

    async def assert_flat(self, window=3.0):
        """Observe for `window` seconds that no video frame is decoded."""
        n = self.nframes
        a = self.audio_frames
        end = time.monotonic() + window
        while time.monotonic() < end:
            check(self.nframes == n,
                  f"{self.label}: {self.nframes - n} video frames decoded during "
                  f"a {window}s window where none should arrive")
            await asyncio.sleep(0.1)
        return n, a

    def recent_color(self, k=10):
        fr = self.video_frames[-k:]
        if not fr:
            return None
        return tuple(sum(c[i] for _, c in fr) / len(fr) for i in range(3))

    async def close(self):
        for t in self._tasks:
            t.cancel()
        await super().close()


def color_close(a, b, tol=45):
    return a is not None and all(abs(x - y) <= tol for x, y in zip(a, b))


# ---------------------------------------------------------------------------
# Billing: tokens, the reference billing service, a plugin config using it
# ---------------------------------------------------------------------------

BILLING_SERVICE = os.path.abspath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "billing-service"))


def b64url(data):
    import base64
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(secret, claims, alg="HS256", header=None):
    """A compact JWS: HS256 over "<header>.<payload>" (base64url, no
    padding); alg 'none' gives an empty signature."""
    import hashlib
    import hmac
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing = b64url(json.dumps(hdr, separators=(",", ":"))) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")))
    if alg == "none":
        return signing + "."
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


class BillingService:
    """scripts/billing-service on a free port of 127.0.0.1, its SQLite
    database and log in `workdir`."""

    def __init__(self, workdir, secrets, funds=()):
        self.workdir = workdir
        self.secrets = list(secrets)
        self.funds = list(funds)
        self.proc = None
        self.url = None
        self.log_path = os.path.join(workdir, "billing.stderr")
        os.makedirs(workdir, exist_ok=True)

    def start(self, deadline=15.0):
        cmd = ["/usr/bin/python3", BILLING_SERVICE, "--listen", "127.0.0.1:0",
               "--db", os.path.join(self.workdir, "billing.db"), "--log-level", "info"]
        for s in self.secrets:
            cmd += ["--secret", s]
        for acc, amount in self.funds:
            cmd += ["--fund", f"{acc}={amount}"]
        self._err = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err)
        box = {}

        def read_line():
            box["line"] = self.proc.stdout.readline().decode("utf-8", "replace")
        t = threading.Thread(target=read_line, daemon=True)
        t.start()
        t.join(deadline)
        line = box.get("line", "")
        prefix = "billing-service listening on "
        if not line.startswith(prefix):
            self.stop()
            raise TestFailure(f"billing-service did not start within {deadline}s "
                              f"(stdout {line!r}); log:\n{self._tail()}")
        self.url = line[len(prefix):].strip()
        return self.url

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        rc = self.proc.returncode
        self.proc = None
        self._err.close()
        return rc

    def _tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, off, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(off)
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])

    # -- HTTP (admin endpoints)
    async def get(self, path):
        return await asyncio.to_thread(_get, self.url + path, 10)

    async def post(self, path, body):
        return await apost(self.url + path, body, 10)

    async def fund(self, account, balance):
        return await self.post("/admin/accounts", {"account": account, "balance": balance})

    async def faults(self, **faults):
        return await self.post("/admin/faults", faults)

    async def reset_faults(self):
        return await self.post("/admin/reset-faults", {})

    async def stats(self):
        return await self.get("/admin/stats")

    async def ledger(self, account):
        import urllib.parse
        return await self.get("/admin/ledger?account=" + urllib.parse.quote(account, safe=""))

    async def balance(self, account):
        import urllib.parse
        return (await self.get("/admin/accounts/" + urllib.parse.quote(account, safe="")))["balance"]

    async def session(self, session_id):
        for s in (await self.get("/admin/sessions"))["sessions"]:
            if s["session"] == session_id:
                return s
        return None

    async def tips(self):
        return (await self.get("/admin/tips"))["tips"]


def billing_plugin_config(billing_url, billing_secret, token_secret, spool_dir,
                          **extra):
    """The plugin's jcfg with a general category using the billing service."""
    os.makedirs(spool_dir, exist_ok=True)
    items = {"token_secret": token_secret, "billing_url": billing_url,
             "billing_secret": billing_secret, "spool_dir": spool_dir}
    items.update({k: v for k, v in extra.items() if v is not None})
    lines = "".join(f'\t{k} = "{v}"\n' for k, v in items.items())
    return "general: {\n" + lines + "}\n"


# ---------------------------------------------------------------------------
# Event handler backend: what Janus's sampleevh POSTs
# ---------------------------------------------------------------------------

class EventSink:
    """A tiny HTTP server on 127.0.0.1 (a thread) collecting the JSON that
    Janus's HTTP event handler POSTs (one event or a grouped array).  Each
    event is kept as (monotonic arrival time, event object)."""

    def __init__(self):
        import http.server
        sink = self
        self.events = []
        self.bad_posts = []
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    data = json.loads(body)
                except ValueError:
                    with sink._lock:
                        sink.bad_posts.append(body[:500])
                    data = []
                items = data if isinstance(data, list) else [data]
                now = time.monotonic()
                with sink._lock:
                    sink.events.extend((now, e) for e in items)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="event-sink")
        self._thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def plugin_events(self, plugin=PLUGIN):
        """[(t, data)] of the plugin events (type 64) of `plugin`, in order."""
        with self._lock:
            evs = list(self.events)
        out = []
        for t, e in evs:
            if not isinstance(e, dict) or e.get("type") != 64:
                continue
            body = e.get("event") or {}
            if body.get("plugin") == plugin and isinstance(body.get("data"), dict):
                out.append((t, body["data"]))
        return out

    def named(self, name, pred=None):
        return [(t, d) for t, d in self.plugin_events()
                if d.get("event") == name and (pred is None or pred(d))]

    async def wait(self, name, pred=None, timeout=10, count=1):
        """Wait until `count` plugin events `name` matching pred arrived;
        returns the list of their data objects."""
        end = time.monotonic() + timeout
        while True:
            got = self.named(name, pred)
            if len(got) >= count:
                return [d for _, d in got]
            if time.monotonic() >= end:
                seen = [d.get("event") for _, d in self.plugin_events()]
                raise TestFailure(
                    f"event handler backend: {len(got)}/{count} '{name}' plugin events "
                    f"within {timeout}s; plugin events seen: {seen[-60:]}; "
                    f"{len(self.events)} events in all, bad posts {self.bad_posts[:2]}")
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------
# A STUN server far away: what makes Janus's ICE gathering take time
# ---------------------------------------------------------------------------

class StunServer:
    """A STUN (RFC 5389) binding server on the veth address (a thread) that
    answers every request `delay` seconds late, as a STUN server that far
    away would.  Janus configured with it (JanusServer(stun=...)) waits that
    long for each handle's candidate gathering, and so for each push of an
    offer (full_trickle is off)."""

    def __init__(self, delay, host="192.0.2.1"):
        import socket
        self.delay = delay
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="stun")
        self._thread.start()

    @staticmethod
    def _response(data, addr):
        """A Binding success response with MAPPED-ADDRESS.  The 16 bytes
        after the length are echoed: libnice's gathering speaks RFC 3489
        (a 128-bit transaction id, no magic cookie), Janus's start-up test
        RFC 5389 (cookie + 96-bit id); both accept MAPPED-ADDRESS."""
        import socket
        import struct
        if len(data) < 20 or struct.unpack("!H", data[:2])[0] != 0x0001:
            return None
        ip, port = addr
        attr = struct.pack("!HHBBH", 0x0001, 8, 0, 0x01, port) + socket.inet_aton(ip)
        return struct.pack("!HH", 0x0101, len(attr)) + data[4:20] + attr

    def _serve(self):
        import heapq
        import select
        due = []    # (monotonic time to answer, seq, response, address)
        seq = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, resp, addr = heapq.heappop(due)
                try:
                    self.sock.sendto(resp, addr)
                except OSError:
                    pass
            # wake up for the next answer due, or now and then to see _stop
            wait = min(due[0][0] - now, 0.2) if due else 0.2
            ready, _, _ = select.select([self.sock], [], [], max(wait, 0))
            if not ready:
                continue
            try:
                data, addr = self.sock.recvfrom(2048)
            except OSError:
                continue
            resp = self._response(data, addr)
            if resp is not None:
                self.requests += 1
                seq += 1
                heapq.heappush(due, (time.monotonic() + self.delay, seq, resp, addr))

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
