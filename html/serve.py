#!/usr/bin/python3
"""serve.py - the paystream demo's static web server (Python 3 stdlib only).

Serves the pages of html/ and the two browser libraries from Debian's
packages, and, for the demo's front door (index.html), a read-only proxy to
the billing service's account balances plus a small demo back end:

  GET  /, /*.html, /*.js, /*.css        files of html/ (nothing else of it)
  GET  /lib/janus.js, /lib/adapter.js  libjs-janus-gateway, libjs-webrtc-adapter
  GET  /billing/accounts/<id>          -> BILLING/admin/accounts/<id> (balance only)
  GET  /demo/config.json               the --demo-config file (room, links)
  POST /demo/rooms                     create a room through the Admin API and
                                       mint a viewer token for the demo viewer
                                       (only with --admin-url; the secrets stay here)

    html/serve.py --listen 127.0.0.1:8080 [--billing http://127.0.0.1:8090]
        [--demo-config FILE] [--admin-url URL --admin-secret-file F
         --token-secret-file F --demo-viewer ACCOUNT]

It is a demo server: bind it to 127.0.0.1 (the billing service it proxies has
unauthenticated admin endpoints; only account balances are passed through).
"""
import argparse
import base64
import hashlib
import hmac
import json
import mimetypes
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = {
    "janus.js": ["/usr/share/javascript/janus-gateway/janus.js"],
    "adapter.js": ["/usr/share/javascript/webrtc-adapter/adapter.js"],
}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
         ".ico": "image/x-icon", ".json": "application/json"}
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9._@:-]{1,128}$")
ROOM_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token(secret, claims):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def read_secret(path):
    with open(path, encoding="utf-8") as f:
        return f.readline().strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "paystream-static/1"
    args = None

    def log_message(self, fmt, *a):
        if not self.args.quiet:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % a))

    def send(self, status, body, ctype="application/json", head=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            path = "/index.html"
        if path.startswith("/lib/"):
            name = path[len("/lib/"):]
            for candidate in LIBS.get(name, []):
                if os.path.isfile(candidate):
                    return self.file(candidate, head)
            return self.send(404, {"error": "no such library: %s (install libjs-janus-gateway and "
                                             "libjs-webrtc-adapter)" % name}, head=head)
        if path.startswith("/billing/accounts/"):
            return self.balance(urllib.parse.unquote(path[len("/billing/accounts/"):]), head)
        if path == "/demo/config.json":
            if not self.args.demo_config:
                return self.send(404, {"error": "no demo configuration"}, head=head)
            return self.file(self.args.demo_config, head)
        name = urllib.parse.unquote(path.lstrip("/"))
        ext = os.path.splitext(name)[1]
        full = os.path.realpath(os.path.join(self.args.root, name))
        if (ext not in TYPES or ext == ".json" or "/" in name or name.startswith(".")
                or os.path.dirname(full) != os.path.realpath(self.args.root) or not os.path.isfile(full)):
            return self.send(404, {"error": "not found"}, head=head)
        return self.file(full, head)

    def file(self, full, head):
        try:
            with open(full, "rb") as f:
                data = f.read()
        except OSError:
            return self.send(404, {"error": "not found"}, head=head)
        ctype = TYPES.get(os.path.splitext(full)[1]) or mimetypes.guess_type(full)[0] or "application/octet-stream"
        self.send(200, data, ctype, head)

    def balance(self, account, head):
        if not self.args.billing:
            return self.send(404, {"error": "no billing service configured"}, head=head)
        if not ACCOUNT_RE.match(account):
            return self.send(400, {"error": "bad account id"}, head=head)
        url = self.args.billing.rstrip("/") + "/admin/accounts/" + urllib.parse.quote(account, safe="")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                data = json.loads(r.read())
            body = {"account": data.get("account"), "balance": data.get("balance"), "known": data.get("known")}
            return self.send(200, body, head=head)
        except (urllib.error.URLError, OSError, ValueError) as e:
            return self.send(502, {"error": "billing service unreachable: %s" % e}, head=head)

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 65536)) if length else b""
        if path != "/demo/rooms":
            return self.send(404, {"error": "not found"})
        a = self.args
        if not (a.admin_url and a.admin_secret_file and a.token_secret_file and a.demo_viewer):
            return self.send(404, {"error": "room creation is not enabled on this server"})
        # Browsers send a cross-site form POST without this header; JSON fetch from our page has it.
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self.send(415, {"error": "send application/json"})
        try:
            body = json.loads(raw or b"{}")
            room = str(body.get("room") or "").strip()
            price = int(body.get("price_per_second", 1))
            description = str(body.get("description") or room)[:256]
        except (ValueError, TypeError, AttributeError):
            return self.send(400, {"error": "bad request"})
        if not ROOM_RE.match(room) or not 0 <= price <= 1000000:
            return self.send(400, {"error": "room: 1 to 64 of A-Z a-z 0-9 . _ -; price 0 to 1000000"})
        stream_key = secrets.token_hex(16)
        request = {"request": "create", "room": room, "description": description, "stream_key": stream_key,
                   "price_per_second": price, "currency": "credits", "tick_notify": 1,
                   "min_tip": 1, "max_tip": 1000}
        msg = {"janus": "message_plugin", "transaction": secrets.token_hex(6),
               "admin_secret": read_secret(a.admin_secret_file),
               "plugin": "janus.plugin.paystream", "request": request}
        try:
            req = urllib.request.Request(a.admin_url, data=json.dumps(msg).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                resp = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            return self.send(502, {"error": "Janus Admin API unreachable: %s" % e})
        data = resp.get("response") or {}
        if resp.get("janus") != "success" or data.get("paystream") == "error":
            err = data.get("error") or (resp.get("error") or {}).get("reason") or "refused"
            return self.send(409 if data.get("error_code") == 445 else 400,
                             {"error": err, "error_code": data.get("error_code")})
        token = make_token(read_secret(a.token_secret_file),
                           {"room": room, "sub": a.demo_viewer, "role": "viewer", "exp": int(time.time()) + 86400})
        return self.send(200, {"room": room, "stream_key": stream_key, "token": token,
                               "price_per_second": price, "currency": "credits"})


def main(argv):
    p = argparse.ArgumentParser(description="paystream demo static server")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.add_argument("--root", default=HERE, help="folder of the pages (default: this file's folder)")
    p.add_argument("--billing", help="billing service base URL, for /billing/accounts/<id>")
    p.add_argument("--demo-config", help="JSON file served as /demo/config.json")
    p.add_argument("--admin-url", help="Janus Admin API URL (enables POST /demo/rooms)")
    p.add_argument("--admin-secret-file")
    p.add_argument("--token-secret-file")
    p.add_argument("--demo-viewer", help="account the minted viewer tokens are for")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    Handler.args = args
    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    print("static server on http://%s:%d serving %s" % (server.server_address[0], server.server_address[1], args.root),
          flush=True)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
