"""Tests of the slowloris: it holds its connections open with a header line now and then,
and reopens those the server closes. Run by scripts/test.sh:

    python3 -m unittest discover -s bench
"""

from __future__ import annotations

import socket
import threading
import time
import unittest

from slowloris import Slowloris


class SlowlorisTest(unittest.TestCase):
    def test_holds_its_connections_and_reopens_closed_ones(self):
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        kept, heads = [], []

        def accept():
            server.settimeout(0.2)
            while True:
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    return
                if len(heads) < 3:  # the first three are closed at once
                    heads.append(conn.recv(4096))
                    conn.close()
                else:
                    kept.append(conn)

        acceptor = threading.Thread(target=accept)
        with Slowloris(port, 10, drip=0.05) as attack:
            acceptor.start()
            time.sleep(0.5)
        acceptor.join()
        self.assertEqual(attack.held, 10)
        self.assertGreaterEqual(attack.reopened, 3)
        self.assertTrue(all(h.startswith(b"GET /hello.php HTTP/1.1\r\nHost: ") for h in heads))
        self.assertIn("10 held at the end", attack.summary())
        for conn in kept:
            conn.close()
        server.close()


if __name__ == "__main__":
    unittest.main()
