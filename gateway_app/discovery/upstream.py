"""HTTP/1.1 to the instances: kept connections, one exchange at a time on each, over
plain sockets (gevent's, in a worker).

The request's head is written here: its parts are the client's headers, which gunicorn
has already parsed and checked, and the gateway's own, so one check that no name is
other than a token and no value holds CR, LF or NUL is all RFC 9112 asks before they go
out. The answer is read with httptools (llhttp, the parser of Node.js, in C): it frames
chunked and sized bodies, refuses a malformed head (a value with CR, LF or NUL, two
Content-Lengths, obs-fold) and gives interim answers (1xx) as answers of their own,
which are skipped. It cannot be told that an answer is to a HEAD, so a fresh parser
reads each exchange and the head of a HEAD's answer is its end.

Rather than h11 (pure Python, whose per-header validation and state machine cost a worker
about a fifth of a proxied request) or http.client (which takes a 103 for the final
answer); bench/RESULTS.md has the figures.
"""
import re
import select
import socket
import ssl
from collections import deque

import httptools
from gevent import monkey

BLOCK = 64 * 1024
# the select module's own poll, also in a gevent worker (gevent's patching removes it): asked
# with no timeout it never blocks, and it answers without the exception a peek at an idle
# socket raises
poll = monkey.get_original("select", "poll")

# RFC 9110 section 5.6.2: a field name (and a method) is a token
NOT_A_TOKEN = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
# RFC 9110 section 5.5: a field value never holds CR, LF or NUL
NOT_IN_A_VALUE = re.compile(r"[\r\n\x00]")
# RFC 9112 section 3.2: what the origin form of a target may hold (visible ASCII)
NOT_IN_A_TARGET = re.compile(r"[^\x21-\x7e]")


class ConnectFailed(Exception):
    """The connection could not be made: the request never left the gateway."""


class ExchangeFailed(Exception):
    """The connection failed or broke the protocol during the exchange.

    ``before_answer``: no byte of an answer came back (a kept connection the instance had
    closed fails this way).
    """

    def __init__(self, detail, before_answer):
        super().__init__(detail)
        self.before_answer = before_answer


def request_head(method, target, host, headers, chunked):
    """The request's head as bytes; ``headers`` is a dict of name -> value."""
    if (NOT_A_TOKEN.search(method) or not method or NOT_IN_A_TARGET.search(target) or not target
            or NOT_A_TOKEN.search("".join(headers)) or NOT_IN_A_VALUE.search("".join(headers.values()))
            or NOT_IN_A_VALUE.search(host)):
        raise ExchangeFailed("sending: an invalid request head", before_answer=True)
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    framing = "Transfer-Encoding: chunked\r\n" if chunked else ""
    try:
        return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{fields}{framing}\r\n".encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ExchangeFailed("sending: an invalid request head", before_answer=True) from exc


class InstanceConnection:
    """One connection to an instance. Its methods other than ``idle_and_open`` and
    ``close`` are httptools' callbacks for the answer being read."""

    def __init__(self, sock, reused=False):
        self.sock = sock
        self.reused = reused
        self.readable = poll()       # whether the instance has written or closed
        self.readable.register(sock.fileno(), select.POLLIN)
        self.parser = None
        self.head_only = False
        self.status = None           # the final answer's, once its head is read
        self.headers = []
        self.blocks = []             # body bytes parsed and not yet handed on
        self.complete = False        # the final answer read to its end
        self.keep_alive = False      # ... and the connection may carry another exchange

    def idle_and_open(self):
        """A kept connection is usable when the instance has neither closed it nor sent
        anything unasked: there is nothing to read (an end of stream reads as readable,
        a reset as an error)."""
        return not self.readable.poll(0)

    def close(self):
        self.parser = None
        try:
            self.sock.close()
        except OSError:
            pass

    # -- one exchange ------------------------------------------------------------------
    def send_request(self, method, target, host, headers, body, chunked, length):
        """The request: head, then ``body`` (an iterable of bytes blocks, or None), sized
        (``length`` bytes, as its Content-Length says) or chunked."""
        head = request_head(method, target, host, headers, chunked)
        sent = 0
        try:
            # a head is a few hundred bytes, which one send() takes whole into an idle
            # connection's buffer; sendall() (which sizes its writes by the socket's buffer
            # on every call) only for what a full buffer left
            written = self.sock.send(head)
            if written < len(head):
                self.sock.sendall(memoryview(head)[written:])
            for block in body or ():
                if block:
                    sent += len(block)
                    self.sock.sendall(b"%x\r\n%b\r\n" % (len(block), block) if chunked else block)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            raise ExchangeFailed(f"sending: {exc.__class__.__name__}", before_answer=True) from exc
        if not chunked and sent != (length if body is not None else 0):
            raise ExchangeFailed("sending: the body did not match its Content-Length", before_answer=True)

    def receive_head(self, head_only):
        """The final answer's head (status, [(name, value)]), skipping interim (1xx) ones.
        ``head_only``: the request was a HEAD, so the answer ends with its head."""
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.status = None
        self.headers = []
        self.blocks = []
        self.complete = self.keep_alive = False
        while self.status is None:
            self._read(before_answer=True)
        return self.status, self.headers

    def receive_blocks(self):
        """The answer's body, as it comes."""
        while True:
            if self.blocks:
                blocks, self.blocks = self.blocks, []
                yield blocks[0] if len(blocks) == 1 else b"".join(blocks)
            if self.complete:
                return
            self._read(before_answer=False)

    def _read(self, before_answer):
        try:
            data = self.sock.recv(BLOCK)
        except socket.timeout as exc:
            raise ExchangeFailed("read timeout: Timeout", before_answer) from exc
        except OSError as exc:
            raise ExchangeFailed(exc.__class__.__name__, before_answer) from exc
        if not data:
            if self.status is not None and not self.framed():
                self.complete = True     # a body that runs to the end of the connection
                return
            raise ExchangeFailed("the instance closed the connection", before_answer)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.complete:   # bytes nobody asked for after a whole answer: it stands
                self.keep_alive = False
                return
            raise ExchangeFailed(exc.__class__.__name__, before_answer) from exc

    def framed(self):
        """Whether the final answer's body has a length or chunks (else it runs to the end
        of the connection)."""
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == "content-length" or (lowered == "transfer-encoding" and "chunked" in value.lower()):
                return True
        return False

    def reusable(self):
        """After a complete exchange that the instance keeps open, ready for the next one
        (else close it)."""
        self.parser = None
        return self.complete and self.keep_alive

    # -- httptools' callbacks ------------------------------------------------------------
    def on_message_begin(self):
        if self.status is None:
            self.headers = []        # an interim answer's headers are not the final one's
        else:
            self.keep_alive = False  # bytes after the answer that nobody asked for

    def on_header(self, name, value):
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self):
        status = self.parser.get_status_code()
        if status < 200:
            return
        self.status = status
        if self.head_only:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body):
        if self.head_only:
            self.keep_alive = False
        else:
            self.blocks.append(body)

    def on_message_complete(self):
        if self.status is not None and not self.head_only:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()


class InstancePool:
    """Kept connections to one instance: up to ``size`` idle ones (the worker's concurrency),
    so steady load opens none; past that a call still gets a connection, closed after use."""

    def __init__(self, instance, size, connect_timeout, read_timeout):
        self.address = instance.host_port
        self.host_header = instance.url.split("://", 1)[1]
        self.tls = ssl.create_default_context() if instance.url.startswith("https://") else None
        self.size = size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle = deque()

    def connection(self):
        while self.idle:
            kept = self.idle.pop()
            if kept.idle_and_open():
                kept.reused = True
                return kept
            kept.close()
        return self.connect()

    def connect(self):
        try:
            sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        except OSError as exc:
            raise ConnectFailed(exc.__class__.__name__) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.read_timeout)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.address[0])
        except OSError as exc:
            sock.close()
            raise ConnectFailed(exc.__class__.__name__) from exc
        return InstanceConnection(sock)

    def put_back(self, connection):
        if connection.reusable() and len(self.idle) < self.size:
            self.idle.append(connection)
        else:
            connection.close()

    def close(self):
        while self.idle:
            self.idle.pop().close()
