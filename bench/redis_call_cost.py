"""CPU cost of one small Redis command from this process (not a test): redis-py's pooled
client call against the connection a batcher keeps (gateway_app/redis_store.OwnConnection),
and a bare socket for scale. Why the batchers keep their own connection.

    .venv/bin/python bench/redis_call_cost.py [--redis-url redis://127.0.0.1:6379/9] [--calls 10000]
"""
import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway_app.redis_store import OwnConnection, make_redis  # noqa: E402

KEYS = [f"gw:bench:version:{n}" for n in range(3)]


def cpu_per_call(call, calls):
    for _ in range(300):
        call()
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--calls", type=int, default=10000)
    args = parser.parse_args()

    client = make_redis(args.redis_url)
    kept = OwnConnection(client)
    connection = client.connection_pool.get_connection()
    raw = socket.create_connection((connection.host, connection.port))
    client.connection_pool.release(connection)
    packed = b"".join(connection.pack_command("MGET", *KEYS))

    def bare_socket():
        raw.sendall(packed)
        raw.recv(65536)

    print(f"CPU per MGET of {len(KEYS)} keys, {args.calls} calls each:")
    for name, call in (("redis-py pooled client", lambda: client.mget(KEYS)),
                       ("kept connection (OwnConnection)", lambda: kept.execute("MGET", *KEYS)),
                       ("bare socket, no parsing", bare_socket)):
        print(f"  {name:34s} {cpu_per_call(call, args.calls):6.1f} us")


if __name__ == "__main__":
    main()
