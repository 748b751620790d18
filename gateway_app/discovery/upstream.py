"""HTTP/1.1 to the instances: kept connections, one exchange at a time on each, spoken
with h11 (a sans-I/O HTTP/1.1 implementation) over plain sockets (gevent's, in a worker).

h11 rather than http.client or urllib3: it reads interim answers (1xx) as what they are,
where http.client takes a 103 for the final answer; it frames bodies for HEAD, 204 and
304 as RFC 9112 says; and it costs a worker about 100 us less per call than urllib3 over
http.client (bench/RESULTS.md).
"""
import select
import socket
import ssl
from collections import deque

import h11

BLOCK = 64 * 1024


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


class InstanceConnection:
    def __init__(self, sock, reused=False):
        self.sock = sock
        self.protocol = h11.Connection(h11.CLIENT)
        self.reused = reused

    def idle_and_open(self):
        """A kept connection is usable when the instance has neither closed it nor sent
        anything unasked."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket):
            readable, _, _ = select.select([sock], [], [], 0)
            return not readable
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            sock.settimeout(timeout)
        return False   # end of stream, or bytes nobody asked for

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- one exchange ------------------------------------------------------------------
    def send_head(self, method, target, headers):
        self._send(h11.Request(method=method, target=target, headers=headers))

    def send_body(self, blocks):
        for block in blocks:
            if block:
                self._send(h11.Data(data=block))
        self._send(h11.EndOfMessage())

    def _send(self, event):
        try:
            self.sock.sendall(self.protocol.send(event))
        except (OSError, h11.LocalProtocolError) as exc:
            raise ExchangeFailed(f"sending: {exc.__class__.__name__}", before_answer=True) from exc

    def receive_head(self):
        """The final answer's head (status, [(name, value)]), skipping interim (1xx) ones."""
        while True:
            event = self._next_event(before_answer=True)
            if isinstance(event, h11.Response):
                headers = [(name.decode("latin-1"), value.decode("latin-1"))
                           for name, value in event.headers.raw_items()]
                return event.status_code, headers
            if not isinstance(event, h11.InformationalResponse):
                raise ExchangeFailed(f"unexpected {type(event).__name__}", before_answer=True)

    def receive_blocks(self):
        """The answer's body, as it comes."""
        while True:
            event = self._next_event(before_answer=False)
            if isinstance(event, h11.Data):
                data = event.data   # h11 may hand a bytearray; a WSGI server takes bytes only
                yield data if type(data) is bytes else bytes(data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ExchangeFailed(f"unexpected {type(event).__name__}", before_answer=False)

    def _next_event(self, before_answer):
        protocol = self.protocol
        while True:
            try:
                event = protocol.next_event()
                if event is not h11.NEED_DATA:
                    if isinstance(event, h11.ConnectionClosed):
                        raise ExchangeFailed("the instance closed the connection", before_answer)
                    return event
                protocol.receive_data(self.sock.recv(BLOCK))
            except socket.timeout as exc:
                raise ExchangeFailed("read timeout: Timeout", before_answer) from exc
            except (OSError, h11.RemoteProtocolError) as exc:
                raise ExchangeFailed(exc.__class__.__name__, before_answer) from exc

    def reusable(self):
        """After a complete exchange both ways, ready for the next one (else close it)."""
        protocol = self.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            return True
        return False


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
