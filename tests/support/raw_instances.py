"""Instances of the tests' own that speak HTTP on the socket themselves, byte for byte
(tests/test_proxy_http.py, tests/test_proxy_exchange.py)."""
import socket
import threading


class LoopbackServer:
    """A TCP server on a free loopback port; each connection it accepts goes to
    ``handle(connection)``, on a thread of its own when ``threaded``. Subclasses set what
    ``handle`` needs before calling this constructor, which starts accepting."""

    threaded = False

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            if self.threaded:
                threading.Thread(target=self.handle, args=(connection,), daemon=True).start()
            else:
                self.handle(connection)

    def close(self):
        self.listener.close()
