"""A signed-in client's bearer token in front of paddock-runtime, for the MCP conformance suite.

    PADDOCK_PROXY_TOKEN=... python3 bearer_proxy.py --upstream 127.0.0.1:PORT --port-file FILE

Why it exists: the conformance suite (npm @modelcontextprotocol/conformance) tests a server as an
unauthenticated client and has no option to send credentials, while every request to /mcp needs a
bearer token. This proxy plays a client that has signed in, and nothing else: it adds
`Authorization: Bearer <token>` to a request that carries none, and forwards everything else as it
came: the method, the path, the body and every header (Host and Origin included, which the DNS
rebinding checks depend on), then the upstream's status, reason, headers and body, streamed as the
runtime writes it (Server-Sent Events included), without buffering. It serves on localhost (the
suite's DNS rebinding scenario insists on a localhost URL): on 127.0.0.1 and, where the machine has
it, on ::1 at the same port, so a client that resolves `localhost` to either reaches it. It picks a
free port itself and writes it to --port-file once it accepts connections.

Standard library only (Python 3.10 or newer).
"""

from __future__ import annotations

import argparse
import errno
import http.client
import http.server
import os
import socket
import sys
import threading

# Hop-by-hop headers (RFC 9110, section 7.6.1) describe one connection, not the message: they are
# not forwarded, and each side of the proxy frames the body for its own connection.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
CHUNK = 64 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses, like the runtime itself
    upstream: tuple[str, int]
    token: str

    def log_message(self, fmt, *args):  # quiet: the runtime logs every request itself
        pass

    def _request_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields, dropped like the other hop-by-hop framing
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length else None

    def _forward(self):
        body = self._request_body()
        connection_tokens = {
            t.strip().lower() for t in self.headers.get("Connection", "").split(",") if t.strip()
        }
        upstream = http.client.HTTPConnection(*self.upstream, timeout=None)
        try:
            # putrequest without its automatic Host and Accept-Encoding: the client's own go upstream.
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                lname = name.lower()
                if lname in HOP_BY_HOP or lname in connection_tokens or lname == "content-length":
                    continue
                upstream.putheader(name, value)
            if "Authorization" not in self.headers:
                upstream.putheader("Authorization", f"Bearer {self.token}")
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
        except OSError as e:
            upstream.close()
            self.send_error(502, f"upstream unreachable: {e}")
            return

        try:
            self.send_response_only(response.status, response.reason)
            framed = response.getheader("Content-Length") is not None
            no_body = (
                self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
            )
            for name, value in response.getheaders():
                if name.lower() in HOP_BY_HOP:
                    continue
                self.send_header(name, value)
            chunked = not framed and not no_body
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if no_body:
                return
            while True:
                data = response.read1(CHUNK)
                if not data:
                    break
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (e.g. closed an event stream): so does its upstream request.
            self.close_connection = True
        finally:
            response.close()
            upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    allow_reuse_address = False


class Server6(Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def bind_localhost(handler) -> list[Server]:
    """Binds 127.0.0.1 on a free port and ::1 on the same one (when the machine has IPv6)."""
    for _ in range(20):
        v4 = Server(("127.0.0.1", 0), handler)
        port = v4.server_address[1]
        try:
            v6 = Server6(("::1", port), handler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:  # something else holds ::1:port: try another port
                v4.server_close()
                continue
            return [v4]  # no IPv6 loopback here
        return [v4, v6]
    sys.exit("bearer_proxy: no port free on both 127.0.0.1 and ::1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of paddock-runtime")
    parser.add_argument("--port-file", required=True, help="where to write the port served")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    token = os.environ.get("PADDOCK_PROXY_TOKEN")
    if not token:
        sys.exit("bearer_proxy: PADDOCK_PROXY_TOKEN is not set")

    handler = type("BoundHandler", (Handler,), {"upstream": (host, int(port)), "token": token})
    servers = bind_localhost(handler)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{servers[0].server_address[1]}\n")
    os.replace(tmp, args.port_file)
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
