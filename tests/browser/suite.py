"""End-to-end browser tests of html/ (see ./run).

One headless Chromium with one window per page (the performer, viewers alice,
bob, carol and dave, and index.html for a moment), a private Janus with the plugin (HTTP on 8088, WebSockets on
8188), the reference billing service on 8090 and html/serve.py on 8080, all on
127.0.0.1 inside the network namespace ./run made.

Every wait is a WebDriverWait on page state with a deadline; no fixed sleeps
for synchronization.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The integration harness starts Janus the same way for both suites.
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as H  # noqa: E402
PLUGIN_SO = os.environ.get("PAYSTREAM_PLUGIN") or os.path.join(ROOT, "build/plugin/.libs/libjanus_paystream.so")
ARTIFACTS = os.environ.get("PAYSTREAM_BROWSER_ARTIFACTS") or os.path.join(ROOT, "build/browser-artifacts")
WEB = "http://127.0.0.1:8080"
BILLING = "http://127.0.0.1:8090"

ROOM = "show"
STREAM_KEY = "browser-test-stream-key"
PRICE = 2
TOKEN_SECRET = "browser-test-token-secret"
BILLING_SECRET = "browser-test-billing-secret"
FUNDS = {"alice": 800, "bob": 5000, "carol": 16, "dave": 1000}   # carol: 8 seconds at 2/s
XSS = '<img src=x onerror="window.__xss=1">'



class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(secret, claims):
    """A compact HS256 JWS, as the platform's backend mints them (docs/API.md "Tokens")."""
    signing = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


def token(sub, **extra):
    claims = {"room": ROOM, "sub": sub, "role": "viewer", "exp": int(time.time()) + 3600}
    claims.update(extra)
    return make_jwt(TOKEN_SECRET, claims)


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def until(fn, timeout, what):
    """Polls fn() (outside the browser, e.g. the billing ledger) until it
    returns something true; Failure after `timeout` seconds."""
    end = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= end:
            raise Failure(f"{what}: not within {timeout}s")
        time.sleep(0.2)  # poll interval, bounded by the deadline


def wait_url(url, proc, name, deadline=20):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise Failure(f"{name} exited with {proc.returncode} during start-up")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)  # readiness poll, bounded by the deadline
    raise Failure(f"{name} did not answer {url} within {deadline}s")


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

class Services:
    def __init__(self, workdir):
        self.wd = workdir
        self.janus = None
        self.procs = []

    def spawn(self, name, argv, **kw):
        log = open(os.path.join(self.wd, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, **kw)
        self.procs.append((name, p))
        return p

    def start(self):
        wd = self.wd
        p = self.spawn("billing", [sys.executable, os.path.join(ROOT, "scripts/billing-service"),
                                   "--listen", "127.0.0.1:8090", "--secret", BILLING_SECRET,
                                   "--db", os.path.join(wd, "billing.db")] +
                       [a for acct, n in FUNDS.items() for a in ("--fund", f"{acct}={n}")])
        wait_url(BILLING + "/health", p, "billing service")

        # A copy: a concurrent rebuild of build/ does not change the plugin under test.
        plugin_copy = os.path.join(wd, "libjanus_paystream.so")
        shutil.copy(PLUGIN_SO, plugin_copy)
        plugin_config = f"""general: {{
	token_secret = "{TOKEN_SECRET}"
	billing_url = "{BILLING}"
	billing_secret = "{BILLING_SECRET}"
	spool_dir = "{wd}/spool"
	instance = "browser-tests"
}}
room-{ROOM}: {{
	room = "{ROOM}"
	description = "browser tests"
	stream_key = "{STREAM_KEY}"
	audiocodec = "opus"
	videocodec = "vp8,h264"
	fir_freq = 10
	price_per_second = {PRICE}
	currency = "credits"
	tick_notify = 1
	min_tip = 1
	max_tip = 1000
}}
"""
        self.janus = H.JanusServer(wd, plugin_copy, plugin_config=plugin_config, websockets=True)
        self.janus.start()
        info = get_json("http://127.0.0.1:8088/janus/info")
        check("janus.plugin.paystream" in info.get("plugins", {}), "janus did not load the plugin")

        p = self.spawn("static", [sys.executable, os.path.join(ROOT, "html/serve.py"), "--listen", "127.0.0.1:8080",
                                  "--billing", BILLING])
        wait_url(WEB + "/index.html", p, "static server")

    def stop(self):
        if self.janus is not None:
            self.janus.stop()
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def dead(self):
        dead = [f"{n} exited with {p.returncode}" for n, p in self.procs if p.poll() is not None]
        if self.janus is not None and not self.janus.alive():
            dead.append("janus exited")
        return dead


# ---------------------------------------------------------------------------
# Browser
# ---------------------------------------------------------------------------

class Browser:
    def __init__(self, workdir):
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  f"--user-data-dir={workdir}/chromium-profile", "--disable-features=WebRtcHideLocalIpsWithMdns",
                  "--autoplay-policy=no-user-gesture-required", "--disable-background-timer-throttling",
                  "--disable-backgrounding-occluded-windows", "--disable-renderer-backgrounding",
                  "--window-size=1280,900", "--disable-dev-shm-usage"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver",
                                                                     log_output=os.path.join(workdir, "chromedriver.log")))
        self.windows = {}
        self.first = True

    def open(self, name, url):
        if self.first:
            self.first = False
        else:
            self.driver.switch_to.new_window("window")
        self.windows[name] = self.driver.current_window_handle
        self.driver.get(url)

    def on(self, name):
        if self.driver.current_window_handle != self.windows[name]:
            self.driver.switch_to.window(self.windows[name])
        return self.driver

    def js(self, name, script, *args):
        return self.on(name).execute_script(script, *args)

    def wait(self, name, script, timeout, what, *args):
        d = self.on(name)
        try:
            return WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda drv: drv.execute_script(script, *args))
        except TimeoutException:
            state = d.execute_script("return [document.body.dataset.state, document.getElementById('state') && "
                                     "document.getElementById('state').textContent, document.getElementById('error') && "
                                     "document.getElementById('error').textContent]")
            raise Failure(f"{name}: {what}: not within {timeout}s (page state {state})") from None

    def wait_async(self, name, script, timeout, what, *args):
        """Like wait(), for a script that reports through its callback."""
        d = self.on(name)
        try:
            return WebDriverWait(d, timeout, poll_frequency=0.5).until(
                lambda drv: drv.execute_async_script(script, *args))
        except TimeoutException:
            raise Failure(f"{name}: {what}: not within {timeout}s") from None

    def state(self, name, wanted, timeout=30):
        return self.wait(name, "return document.body.dataset.state === arguments[0]", timeout,
                         f"state {wanted!r}", wanted)

    def text(self, name, elem_id):
        return self.on(name).find_element(By.ID, elem_id).text

    def close(self, name):
        self.on(name).close()
        del self.windows[name]
        if self.windows:
            self.driver.switch_to.window(next(iter(self.windows.values())))

    def console(self, name):
        try:
            return [f"{e.get('level')} {e.get('message')}" for e in self.on(name).get_log("browser")]
        except WebDriverException:
            return []

    def rtp_stats(self, name):
        """The viewer's inbound video RTP stats (for failure reports)."""
        try:
            return self.on(name).execute_async_script("""
const done = arguments[arguments.length - 1];
const v = window.paystreamPage && window.paystreamPage.viewer;
const pc = v && v.pc;
if (!pc) return done(null);
pc.getStats().then((r) => {
  const out = [];
  r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video')
    out.push({ssrc: s.ssrc, packets: s.packetsReceived, lost: s.packetsLost, bytes: s.bytesReceived,
              decoded: s.framesDecoded, keyframes: s.keyFramesDecoded, plis: s.pliCount, firs: s.firCount,
              w: s.frameWidth, h: s.frameHeight, dropped: s.framesDropped, nacks: s.nackCount}); });
  done({pc: pc.connectionState, ice: pc.iceConnectionState, video: out});
}, () => done(null));
""")
        except WebDriverException as e:
            return str(e)

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException:
            pass


# ---------------------------------------------------------------------------
# Tests (they run in this order and build on each other's pages)
# ---------------------------------------------------------------------------

PLAYING = """
const v = document.getElementById('video');
return v && v.videoWidth > 0 && v.currentTime > 0 ? [v.videoWidth, v.currentTime, window.paystreamFrames.count] : null;
"""


def playing(b, name, timeout=30):
    """The viewer's video has a size and its currentTime advances."""
    w, t0, _ = b.wait(name, PLAYING, timeout, "video playing (videoWidth > 0)")
    b.wait(name, "const v = document.getElementById('video'); return v.currentTime > arguments[0] + 1.0",
           15, "video currentTime advancing", t0)
    return w


def viewer_url(sub, display, **extra):
    q = {"room": ROOM, "token": token(sub, **extra), "display": display}
    return WEB + "/viewer.html?" + urllib.parse.urlencode(q)


def test_performer_goes_live(b):
    url = WEB + "/performer.html?" + urllib.parse.urlencode(
        {"room": ROOM, "key": STREAM_KEY, "display": "Star", "video": "960x540"})
    b.open("performer", url)
    b.state("performer", "live", 40)
    check(b.js("performer", "return document.body.dataset.simulcast") == "true",
          "the plugin did not report simulcast for the performer (published.simulcast)")
    b.wait("performer", "const v = document.getElementById('preview'); return v.videoWidth > 0", 10, "camera preview")
    # Chromium sends the rid header extension only until the receiver's
    # reports acknowledge a layer's SSRC. Waiting for those reports makes the
    # viewers below join a stream whose packets no longer say which layer
    # they are, as they do in production whenever nobody watches at first.
    b.wait_async("performer", RID_ACKED, 20, "Janus's receiver reports for every simulcast layer")


# True once the performer's PeerConnection has a remote-inbound-rtp (built
# from Janus's receiver reports) for each of its three video layers.
RID_ACKED = """
const done = arguments[arguments.length - 1];
const p = window.paystreamPage.performer, pc = p && p.pc;
if (!pc) return done(false);
pc.getStats().then((r) => {
  const layers = new Set(), acked = new Set();
  r.forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') layers.add(s.ssrc); });
  r.forEach((s) => { if (s.type === 'remote-inbound-rtp' && layers.has(s.ssrc)) acked.add(s.ssrc); });
  done(layers.size === 3 && acked.size === 3);
}, () => done(false));
"""


def test_two_viewers_play(b):
    b.open("alice", viewer_url("alice", "Alice"))
    b.open("bob", viewer_url("bob", "Bob"))
    for name in ("alice", "bob"):
        b.state(name, "live", 40)
        playing(b, name)
    b.wait("performer", "return Number(document.getElementById('viewers').textContent) >= 2", 10,
           "performer's viewer count reaches 2")


def billed_seconds(account):
    ledger = get_json(f"{BILLING}/admin/ledger?account={account}")
    return -sum(e["delta"] for e in ledger["entries"] if e["kind"] == "usage") / PRICE


def meter(b, name):
    return int(b.js(name, "return Number(document.getElementById('seconds').textContent)"))


def test_meter_counts_and_matches_ledger(b):
    s0 = b.wait("alice", "const s = Number(document.getElementById('seconds').textContent); return s > 0 ? s : null",
                20, "meter starts")
    t0 = time.monotonic()
    s1 = b.wait("alice", "const s = Number(document.getElementById('seconds').textContent); "
                "return s >= arguments[0] + 6 ? s : null", 15, "meter counts 6 more seconds", s0)
    elapsed = time.monotonic() - t0
    rate = (s1 - s0) / elapsed
    check(0.7 <= rate <= 1.35, f"meter rate {rate:.2f} s/s ({s1 - s0} s in {elapsed:.1f} s)")
    amount = int(b.js("alice", "return Number(document.getElementById('amount').textContent)"))
    check(amount == s1 * PRICE or amount >= (s1 - 1) * PRICE, f"amount {amount} for {s1} s at {PRICE}/s")
    # The page's meter against the billing service's ledger (batches every second).
    shown = meter(b, "alice")
    billed = billed_seconds("alice")
    check(abs(shown - billed) <= 2, f"meter shows {shown} s, ledger has {billed} s for alice")


def tip(b, name, amount, message):
    d = b.on(name)
    d.find_element(By.ID, "tip-amount").clear()
    d.find_element(By.ID, "tip-amount").send_keys(str(amount))
    d.find_element(By.ID, "tip-message").clear()
    d.find_element(By.ID, "tip-message").send_keys(message)
    d.execute_script("document.getElementById('tip-result').dataset.status = ''")
    d.find_element(By.ID, "tip-send").click()
    return b.wait(name, "const s = document.getElementById('tip-result').dataset.status;"
                  "return ['accepted', 'declined', 'failed', 'error'].includes(s) ? s : null", 20, "tip result")


FEED_HAS = """
return [...document.querySelectorAll('#tips li .msg')].some((e) => e.textContent === arguments[0]);
"""


def test_tip_reaches_performer_and_others(b):
    status = tip(b, "alice", 7, XSS)
    check(status == "accepted", f"alice's tip: {status}: {b.text('alice', 'tip-result')}")
    for name in ("performer", "bob", "alice"):
        b.wait(name, FEED_HAS, 10, "the tip in the feed, as text", XSS)
        check(b.js(name, "return document.querySelectorAll('#tips img').length") == 0, f"{name}: an <img> in the feed")
        check(b.js(name, "return window.__xss === undefined"), f"{name}: the tip message ran as HTML")
    li = b.on("performer").find_element(By.CSS_SELECTOR, "#tips li")
    check("Alice" in li.text and "7" in li.text, f"performer's feed entry: {li.text!r}")


def test_tip_beyond_balance_declined(b):
    status = tip(b, "alice", 1000, "too much")
    check(status == "declined", f"a 1000 tip with alice's balance: {status}: {b.text('alice', 'tip-result')}")
    check("not enough funds" in b.text("alice", "tip-result"), b.text("alice", "tip-result"))
    # A later tip is delivered after the declined one would have been: once
    # the marker shows, the declined tip would be there too.
    marker = "marker after the declined tip"
    status = tip(b, "alice", 1, marker)
    check(status == "accepted", f"marker tip: {status}: {b.text('alice', 'tip-result')}")
    for name in ("performer", "bob", "alice"):
        b.wait(name, FEED_HAS, 10, "the marker tip", marker)
        check(not b.js(name, FEED_HAS, "too much"), f"{name} shows the declined tip")


SENT_LAYERS = """
const pc = window.paystreamPage.performer && window.paystreamPage.performer.pc;
if (!pc) return null;
const s = pc.getSenders().find((x) => x.track && x.track.kind === 'video');
return s ? JSON.stringify(s.getParameters().encodings.map((e) => [e.rid, e.active, e.scaleResolutionDownBy])) : null;
"""


def test_quality_low(b):
    w0 = b.wait("bob", "const f = window.paystreamFrames; return f.width >= 480 ? f.width : null", 30,
                "bob receives a layer at least 480 wide")
    Select(b.on("bob").find_element(By.ID, "quality")).select_by_value("low")
    try:
        w1 = b.wait("bob", "const f = window.paystreamFrames; return f.width > 0 && f.width < arguments[0] ? f.width : null",
                    20, f"received width drops below {w0}", w0)
    except Failure as e:
        raise Failure(f"{e}; layer shown: {b.text('bob', 'layer')!r}; error: {b.text('bob', 'error')!r}; "
                      f"performer's sent layers: {b.js('performer', SENT_LAYERS)}") from None
    b.wait("bob", "return document.getElementById('layer').textContent.startsWith('low')", 10,
           "simulcast event reports the low layer")
    check(w1 <= w0 / 2, f"low layer width {w1} vs {w0}")


def test_out_of_funds_stops(b):
    b.open("carol", viewer_url("carol", "Carol"))
    b.state("carol", "live", 40)
    b.wait("carol", "return window.paystreamFrames.count > 0", 20, "carol's video plays")
    b.state("carol", "stopped", 40)
    reason = b.js("carol", "return document.body.dataset.stopReason")
    check(reason == "insufficient_funds", f"stop reason {reason!r}")
    check("out of funds" in b.text("carol", "overlay"), f"overlay: {b.text('carol', 'overlay')!r}")
    b.wait("carol", "return performance.now() - window.paystreamFrames.last > 2500", 15, "carol's video stops")
    check(b.js("carol", "return document.getElementById('pause').disabled"), "pause still enabled after stop")


def test_performer_restart_viewers_recover(b):
    b.close("carol")
    b.on("performer").find_element(By.ID, "stop").click()
    b.state("performer", "offline", 15)
    for name in ("alice", "bob"):
        b.state(name, "offline", 15)
    b.on("performer").find_element(By.ID, "golive").click()
    b.state("performer", "live", 30)
    for name in ("alice", "bob"):
        b.state(name, "live", 30)
        c0 = b.js(name, "return window.paystreamFrames.count")
        before = b.rtp_stats(name)
        try:
            b.wait(name, "return window.paystreamFrames.count > arguments[0] + 15", 20, "frames after the restart", c0)
        except Failure as e:
            raise Failure(f"{e}; video RTP when the viewer showed live again: {before}; 20 s later: {b.rtp_stats(name)}") from None
        b.wait(name, "return window.paystreamFrames.count > arguments[0] + 15", 20, "frames after the restart", c0)
        playing(b, name, 10)
    s0 = meter(b, "alice")
    b.wait("alice", "return Number(document.getElementById('seconds').textContent) >= arguments[0] + 2", 10,
           "meter counts again", s0)


NO_FRAMES_FOR = "return performance.now() - window.paystreamFrames.last > arguments[0]"
CURRENT_TIME = "return document.getElementById('video').currentTime"


def frames_advance(b, name, n, timeout, what):
    c0 = b.js(name, "return window.paystreamFrames.count")
    b.wait(name, "return window.paystreamFrames.count > arguments[0] + arguments[1]", timeout, what, c0, n)


def test_pause_resume_stops_video_and_meter(b):
    """Pause stops alice's video (no frames, currentTime flat) and her meter
    (page and billing ledger flat while bob's meter counts 4 s); Resume brings
    both back."""
    b.state("alice", "live", 10)
    playing(b, "alice", 10)
    try:
        pause_resume(b)
    finally:
        # Whatever failed, the later tests need alice watching.
        if b.js("alice", "return document.body.dataset.state") == "paused":
            b.on("alice").find_element(By.ID, "pause").click()


def pause_resume(b):
    button = b.on("alice").find_element(By.ID, "pause")
    check(button.text == "Pause", f"pause button says {button.text!r}")
    button.click()
    b.state("alice", "paused", 10)
    check(b.text("alice", "pause") == "Resume", f"after pausing the button says {b.text('alice', 'pause')!r}")
    b.wait("alice", NO_FRAMES_FOR, 10, "no video frames for 2 s after Pause", 2000)
    # The last seconds before the pause reach the ledger; then everything is flat.
    until(lambda: billed_seconds("alice") == meter(b, "alice"), 10,
          "alice's ledger catches up with her meter after the pause "
          f"(meter {meter(b, 'alice')} s, ledger {billed_seconds('alice')} s)")
    ct0, s0, l0 = b.js("alice", CURRENT_TIME), meter(b, "alice"), billed_seconds("alice")
    bob0 = meter(b, "bob")
    b.wait("bob", "return Number(document.getElementById('seconds').textContent) >= arguments[0] + 4", 10,
           "bob's meter counts 4 s while alice is paused", bob0)
    ct1, s1, l1 = b.js("alice", CURRENT_TIME), meter(b, "alice"), billed_seconds("alice")
    check(abs(ct1 - ct0) < 0.05, f"alice's video currentTime moved while paused: {ct0:.3f} -> {ct1:.3f}")
    check(s1 == s0, f"alice's meter counted while paused: {s0} -> {s1} s")
    check(l1 == l0, f"alice's ledger grew while paused: {l0} -> {l1} s")
    check(b.js("alice", NO_FRAMES_FOR, 4000), "alice's video showed frames while paused")

    b.on("alice").find_element(By.ID, "pause").click()
    b.state("alice", "live", 10)
    check(b.text("alice", "pause") == "Pause", f"after resuming the button says {b.text('alice', 'pause')!r}")
    frames_advance(b, "alice", 15, 10, "frames after Resume")
    b.wait("alice", "return document.getElementById('video').currentTime > arguments[0] + 1.0", 10,
           "currentTime advances after Resume", ct1)
    b.wait("alice", "return Number(document.getElementById('seconds').textContent) >= arguments[0] + 2", 10,
           "alice's meter counts again after Resume", s1)
    until(lambda: billed_seconds("alice") >= l1 + 2, 10, "alice's ledger grows again after Resume")


A11Y_MISSING = r"""
const sel = 'a[href], button, input:not([type=hidden]), select, textarea, video[controls], audio[controls], ' +
            '[tabindex]:not([tabindex="-1"]), [contenteditable]:not([contenteditable=false]), [role=button], [role=link]';
const textOf = (node) => {
  // A label's own words: without the text of the controls inside it (a select's options).
  const c = node.cloneNode(true);
  c.querySelectorAll('input, select, textarea, button').forEach((x) => x.remove());
  return c.textContent.trim();
};
const out = [];
for (const el of document.querySelectorAll(sel)) {
  let name = (el.getAttribute('aria-label') || '').trim();
  if (!name && el.getAttribute('aria-labelledby'))
    name = el.getAttribute('aria-labelledby').split(/\s+/).map((id) => { const x = document.getElementById(id); return x ? x.textContent : ''; }).join(' ').trim();
  if (!name && el.labels) name = [...el.labels].map(textOf).join(' ').trim();
  if (!name && (el.tagName === 'BUTTON' || el.tagName === 'A' || el.getAttribute('role'))) name = el.textContent.trim();
  if (!name && el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) name = el.value.trim();
  if (!name) name = (el.getAttribute('title') || '').trim();
  if (!name) out.push(el.outerHTML.slice(0, 160));
}
return out;
"""
INTERACTIVE_ROLES = {"button", "link", "textbox", "searchbox", "spinbutton", "combobox", "listbox", "checkbox",
                     "radio", "switch", "slider", "menuitem", "tab"}


def accessible_names(b, name):
    """Every interactive control has an accessible name: by the DOM (labels,
    aria-label, aria-labelledby, text; hidden ones too) and by Chromium's own
    accessibility tree (what a screen reader gets)."""
    missing = b.js(name, A11Y_MISSING)
    check(not missing, f"{name}: controls without an accessible name: {missing}")
    d = b.on(name)
    d.execute_cdp_cmd("Accessibility.enable", {})
    try:
        nodes = d.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"]
    finally:
        d.execute_cdp_cmd("Accessibility.disable", {})
    seen, unnamed = 0, []
    for n in nodes:
        role = (n.get("role") or {}).get("value")
        if n.get("ignored") or role not in INTERACTIVE_ROLES:
            continue
        seen += 1
        if not str((n.get("name") or {}).get("value") or "").strip():
            unnamed.append((role, n.get("backendDOMNodeId")))
    check(seen > 0, f"{name}: no interactive controls in the accessibility tree")
    check(not unnamed, f"{name}: unnamed controls in the accessibility tree: {unnamed}")
    return seen


def press(b, name, *keys):
    ActionChains(b.on(name)).send_keys(*keys).perform()


def focused(b, name):
    return b.js(name, "const e = document.activeElement; return e ? (e.id || e.tagName.toLowerCase()) : null")


def test_keyboard_tip_and_accessible_names(b):
    """alice tabs from the top of the page to the tip amount, the message and
    the Tip button and tips with the keyboard only; the focused control shows
    a focus ring; every control of the three pages has an accessible name."""
    # The starting point: the first control of the page (the header link).
    b.js("alice", "document.querySelector('header a').focus()")
    path = [focused(b, "alice")]
    for _ in range(25):
        if path[-1] == "tip-amount":
            break
        press(b, "alice", Keys.TAB)
        path.append(focused(b, "alice"))
    check(path[-1] == "tip-amount", f"Tab never reached the tip amount: {path}")
    for wanted in ("pause", "quality", "leave"):
        check(wanted in path, f"Tab skipped {wanted!r} on the way to the tip amount: {path}")
    press(b, "alice", Keys.CONTROL, "a")
    press(b, "alice", "3")
    check(b.js("alice", "return document.getElementById('tip-amount').value") == "3", "typing the amount")
    press(b, "alice", Keys.TAB)
    check(focused(b, "alice") == "tip-message", f"Tab after the amount went to {focused(b, 'alice')!r}")
    message = "typed with the keyboard only"
    press(b, "alice", message)
    press(b, "alice", Keys.TAB)
    check(focused(b, "alice") == "tip-send", f"Tab after the message went to {focused(b, 'alice')!r}")
    check(b.js("alice", "const e = document.activeElement; return e.matches(':focus-visible') && "
                        "getComputedStyle(e).outlineStyle !== 'none' && parseFloat(getComputedStyle(e).outlineWidth) > 0"),
          "the focused Tip button shows no focus ring")
    b.js("alice", "document.getElementById('tip-result').dataset.status = ''")
    press(b, "alice", Keys.ENTER)
    status = b.wait("alice", "const s = document.getElementById('tip-result').dataset.status;"
                    "return ['accepted', 'declined', 'failed', 'error'].includes(s) ? s : null", 20, "tip result")
    check(status == "accepted", f"keyboard tip: {status}: {b.text('alice', 'tip-result')}")
    check("3 credits" in b.text("alice", "tip-result"), b.text("alice", "tip-result"))
    for name in ("performer", "alice"):
        b.wait(name, FEED_HAS, 10, "the keyboard tip in the feed", message)

    counts = {name: accessible_names(b, name) for name in ("alice", "performer")}
    b.open("index", WEB + "/index.html")
    b.wait("index", "return document.readyState === 'complete'", 10, "index.html loaded")
    counts["index"] = accessible_names(b, "index")
    b.close("index")
    print(f"     accessible names checked (controls in the accessibility tree): {counts}; tab path {path}", flush=True)


REFRESH_RESULT = "return (window.__refreshResults || []).find((r) => r.id === arguments[0]) || null"


def test_budget_spent_then_token_refresh(b):
    """dave's token has a budget of 4 seconds: the page stops with "budget
    spent". The platform posts a new token (postMessage): the page goes live
    and the video plays again until that budget is spent too; a refused token
    (another viewer's) leaves it stopped; window.paystreamViewer.refresh()
    with a big budget brings it back again."""
    b.open("dave", viewer_url("dave", "Dave", budget=4 * PRICE))
    b.state("dave", "live", 40)
    b.wait("dave", "return window.paystreamFrames.count > 0", 20, "dave's video plays")
    b.state("dave", "stopped", 30)
    check(b.js("dave", "return document.body.dataset.stopReason") == "budget_exhausted",
          f"stop reason {b.js('dave', 'return document.body.dataset.stopReason')!r}")
    check(b.text("dave", "state") == "stopped: budget spent", f"badge: {b.text('dave', 'state')!r}")
    b.wait("dave", NO_FRAMES_FOR, 10, "dave's video stops", 2000)
    spent = int(b.js("dave", "return Number(document.getElementById('amount').textContent)"))
    check(spent <= 4 * PRICE, f"dave spent {spent} with a budget of {4 * PRICE}")

    b.js("dave", "window.__refreshResults = []; window.addEventListener('message', (e) => {"
                 " if (e.data && e.data.type === 'paystream:refresh-result') window.__refreshResults.push(e.data); });")
    post = "window.postMessage({type: 'paystream:refresh', token: arguments[0], id: arguments[1]}, location.origin)"
    # Another viewer's token is refused; the page stays stopped.
    b.js("dave", post, token("bob", budget=1000), "wrong")
    r = b.wait("dave", REFRESH_RESULT, 10, "answer to the refused refresh", "wrong")
    check(r["ok"] is False and r.get("code") == 458, f"refresh with bob's token: {r}")
    check(b.js("dave", "return document.body.dataset.state") == "stopped", "a refused refresh changed the state")

    budget1 = spent + 4 * PRICE
    b.js("dave", post, token("dave", budget=budget1), "r1")
    r = b.wait("dave", REFRESH_RESULT, 10, "answer to the refresh", "r1")
    check(r["ok"] is True and r["resumed"] is True and r["budget"] == budget1, f"refresh: {r}")
    b.state("dave", "live", 10)
    check(b.js("dave", "return document.body.dataset.stopReason") is None, "stop reason still set after the refresh")
    frames_advance(b, "dave", 15, 15, "dave's frames after the refresh")
    playing(b, "dave", 10)
    b.state("dave", "stopped", 30)
    check(b.js("dave", "return document.body.dataset.stopReason") == "budget_exhausted", "second stop reason")
    spent2 = int(b.js("dave", "return Number(document.getElementById('amount').textContent)"))
    check(spent < spent2 <= budget1, f"dave spent {spent2} after the refresh (budget {budget1}, before {spent})")
    b.wait("dave", NO_FRAMES_FOR, 10, "dave's video stops again", 2000)

    r = b.on("dave").execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.paystreamViewer.refresh(arguments[0]).then(done, (e) => done({error: String(e && e.message || e)}));",
        token("dave", budget=1000))
    check(r.get("resumed") is True and r.get("budget") == 1000, f"window.paystreamViewer.refresh: {r}")
    b.state("dave", "live", 10)
    frames_advance(b, "dave", 15, 15, "dave's frames after the second refresh")
    s0 = meter(b, "dave")
    b.wait("dave", "return Number(document.getElementById('seconds').textContent) >= arguments[0] + 3", 10,
           "dave's meter counts after the second refresh", s0)
    until(lambda: abs(billed_seconds("dave") - meter(b, "dave")) <= 2, 10,
          f"dave's ledger ({billed_seconds('dave')} s) matches his meter ({meter(b, 'dave')} s)")
    b.close("dave")


def test_performer_reconnects_after_media_drop(b):
    """The performer's PeerConnection is hung up under the page (its debug
    hook, as when the media connection dies): the page shows reconnecting,
    goes live again with takeover on a new handle, and both viewers play on."""
    b.state("performer", "live", 10)
    n0 = b.js("performer", "return window.paystreamStates.length")
    old = b.js("performer", "return window.paystreamPage.performer.handle.getId()")
    counts = {name: b.js(name, "return window.paystreamFrames.count") for name in ("alice", "bob")}
    check(b.js("performer", "return window.paystreamPage.debugDropMedia()"), "the debug hook found no live connection")
    b.wait("performer", "return window.paystreamStates.slice(arguments[0]).some((s) => s.state === 'reconnecting')",
           10, "the performer page shows reconnecting", n0)
    b.state("performer", "live", 30)
    new = b.js("performer", "return window.paystreamPage.performer.handle.getId()")
    check(new != old, "the page came back on the same handle")
    check(b.js("performer", "return window.paystreamPage.performer.opts.takeover") is True, "no takeover on reconnect")
    states = b.js("performer", "return window.paystreamStates.slice(arguments[0]).map((s) => s.state)", n0)
    check(states[-1] == "live" and "reconnecting" in states, f"performer states: {states}")
    for name in ("alice", "bob"):
        b.state(name, "live", 30)
        try:
            b.wait(name, "return window.paystreamFrames.count > arguments[0] + 30", 20,
                   "frames after the performer reconnected", counts[name])
        except Failure as e:
            raise Failure(f"{e}; video RTP: {b.rtp_stats(name)}") from None
        playing(b, name, 10)
    b.wait("performer", "return Number(document.getElementById('viewers').textContent) >= 2", 10,
           "the performer's viewer count is 2 again")
    print(f"     performer states after the drop: {states}", flush=True)


def test_screenshots(b):
    os.makedirs(ARTIFACTS, exist_ok=True)
    saved = []
    for width, height, tag in ((1280, 900, "desktop"), (390, 844, "phone")):
        for name in ("performer", "alice"):
            d = b.on(name)
            d.set_window_size(width, height)
            b.wait(name, "return window.innerWidth <= arguments[0]", 5, "resize", width)
            path = os.path.join(ARTIFACTS, f"{name}-{tag}.png")
            check(d.save_screenshot(path), f"screenshot {path}")
            saved.append(path)
            # The whole page too (below the fold), through the DevTools protocol.
            height = d.execute_script("return document.documentElement.scrollHeight")
            shot = d.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
            path = os.path.join(ARTIFACTS, f"{name}-{tag}-full.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            saved.append(path)
    print("screenshots: " + " ".join(saved), flush=True)


TESTS = [test_performer_goes_live, test_two_viewers_play, test_meter_counts_and_matches_ledger,
         test_tip_reaches_performer_and_others, test_tip_beyond_balance_declined, test_quality_low,
         test_pause_resume_stops_video_and_meter, test_keyboard_tip_and_accessible_names,
         test_out_of_funds_stops, test_budget_spent_then_token_refresh, test_performer_restart_viewers_recover,
         test_performer_reconnects_after_media_drop, test_screenshots]


def main(argv):
    if os.path.isdir(ARTIFACTS):
        shutil.rmtree(ARTIFACTS)
    os.makedirs(ARTIFACTS)
    print(f"artifacts (screenshots, logs): {ARTIFACTS}", flush=True)
    if not os.path.isfile(PLUGIN_SO):
        print(f"browser: plugin not found: {PLUGIN_SO}")
        print("browser: 0 passed, 1 failed")
        return 1
    workdir = tempfile.mkdtemp(prefix="paystream-browser-")
    services = Services(workdir)
    browser = None
    passed = failed = 0
    started = time.monotonic()
    try:
        services.start()
        browser = Browser(workdir)
        for fn in TESTS:
            name = fn.__name__[len("test_"):]
            t0 = time.monotonic()
            try:
                fn(browser)
                passed += 1
                print(f"ok   {name} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {e}", flush=True)
                if not isinstance(e, Failure):
                    traceback.print_exc()
                dead = services.dead()
                if dead:
                    print("  dead services: " + ", ".join(dead), flush=True)
                for w in list(browser.windows):
                    if w != "performer":
                        print(f"  [{w} rtp] {browser.rtp_stats(w)}", flush=True)
                    for line in browser.console(w)[-15:]:
                        print(f"  [{w} console] {line[:300]}", flush=True)
                if dead:
                    break
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL setup: {e}", flush=True)
        traceback.print_exc()
    finally:
        if browser:
            browser.quit()
        services.stop()
        for log in ("janus.log", "billing.log", "static.log", "chromedriver.log"):
            src = os.path.join(workdir, log)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(ARTIFACTS, log))
        if os.environ.get("PAYSTREAM_BROWSER_KEEP") == "1":
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f}s; logs and screenshots in {ARTIFACTS}")
    print(f"browser: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
