#!/usr/bin/env python3
"""tests/s3/sigv4_check.py - a strict little S3 stand-in for tests/0312-store_s3.sh.

moto does not check signatures unless IAM auth is on, and then mis-verifies
keys with non-ASCII characters or '+'. This server checks every request the
way S3 does, using botocore's own S3 SigV4 signer as the independent
implementation:

  * the path must be the canonical S3 encoding of the key it decodes to
    (quote(key, safe='/~'), upper-case hex), else 400 NonCanonicalPath;
  * x-amz-content-sha256 must match the body received, else
    400 XAmzContentSHA256Mismatch;
  * the Authorization signature must equal botocore's for the same request,
    else 403 SignatureDoesNotMatch (InvalidAccessKeyId for another key).

Objects live in memory. Keys containing "flaky/" answer 503 SlowDown to
their first two requests, keys containing "down/" always do; GET of a key
ending in "chunked/<n>" answers <n> bytes with chunked transfer encoding (no
Content-Length).

Usage: sigv4_check.py ACCESS_KEY SECRET_KEY REGION  (prints the port, then serves)
"""
import hashlib
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote_to_bytes

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS, SECRET, REGION = sys.argv[1:4]
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
objects = {}
attempts = {}
lock = threading.Lock()
AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("sigv4_check: " + (fmt % args) + "\n")

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, s3code, msg):
        sys.stderr.write(f"sigv4_check: {self.command} {self.path} -> {code} {s3code}: {msg}\n")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{s3code}</Code>'
                f"<Message>{msg.replace('&', '&amp;').replace('<', '&lt;')}</Message></Error>")
        self.reply(code, body.encode())

    def check(self, body):
        """Returns (bucket, key) or None after answering with an error."""
        raw = self.path
        if "?" in raw:
            return self.error(400, "InvalidRequest", "no query strings expected")
        try:
            decoded = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return self.error(400, "InvalidURI", "path is not UTF-8")
        canonical = quote(decoded, safe="/~")
        if raw != canonical:
            return self.error(400, "NonCanonicalPath", f"sent {raw}, S3 canonical form {canonical}")
        sha = self.headers.get("x-amz-content-sha256", "")
        if sha != hashlib.sha256(body).hexdigest():
            return self.error(400, "XAmzContentSHA256Mismatch", f"header {sha!r}")
        m = AUTH_RE.match(self.headers.get("Authorization", ""))
        if not m:
            return self.error(403, "AccessDenied", "missing or malformed Authorization")
        access, _, region, signed, signature = m.groups()
        if access != ACCESS:
            return self.error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided "
                              "does not exist in our records.")
        if region != REGION:
            return self.error(400, "AuthorizationHeaderMalformed", f"region {region}")
        names = signed.split(";")
        if "host" not in names or "x-amz-content-sha256" not in names:
            return self.error(403, "AccessDenied", f"host and x-amz-content-sha256 must be "
                              f"signed, got {signed}")
        headers = {n: self.headers.get(n, "") for n in names}
        req = AWSRequest(method=self.command, url="http://" + headers["host"] + canonical,
                         headers=headers, data=body)
        req.context["timestamp"] = self.headers.get("x-amz-date", "")
        auth = S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", REGION)
        cr = auth.canonical_request(req)
        expect = auth.signature(auth.string_to_sign(req, cr), req)
        if expect != signature:
            return self.error(403, "SignatureDoesNotMatch", "The request signature we "
                              "calculated does not match the signature you provided.")
        parts = decoded.lstrip("/").split("/", 1)
        if len(parts) != 2 or not parts[1]:
            return self.error(400, "InvalidRequest", "path-style /bucket/key expected")
        return parts[0], parts[1]

    def flaky(self, key):
        with lock:
            n = attempts.get((self.command, key), 0)
            attempts[(self.command, key)] = n + 1
        if "down/" in key or ("flaky/" in key and n < 2):
            self.error(503, "SlowDown", "Please reduce your request rate.")
            return True
        return False

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        bk = self.check(body)
        if bk and not self.flaky(bk[1]):
            with lock:
                objects[bk] = body
            self.reply(200, headers=[("ETag", '"%s"' % hashlib.md5(body).hexdigest())])

    def do_GET(self):
        bk = self.check(b"")
        if not bk or self.flaky(bk[1]):
            return
        if "chunked/" in bk[1]:
            left = int(bk[1].split("chunked/")[1])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while left:
                n = min(left, 65536)
                self.wfile.write(b"%x\r\n" % n + b"c" * n + b"\r\n")
                left -= n
            self.wfile.write(b"0\r\n\r\n")
            return
        with lock:
            body = objects.get(bk)
        if body is None:
            return self.error(404, "NoSuchKey", "The specified key does not exist.")
        self.reply(200, body)

    def do_HEAD(self):
        bk = self.check(b"")
        if bk and not self.flaky(bk[1]):
            with lock:
                body = objects.get(bk)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.reply(200, body)

    def do_DELETE(self):
        bk = self.check(b"")
        if bk and not self.flaky(bk[1]):
            with lock:
                objects.pop(bk, None)
            self.reply(204)


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
