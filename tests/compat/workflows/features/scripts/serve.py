"""A service job: answers each connection on a Unix socket until it is terminated."""

import os
import socket
import sys

path = sys.argv[1]
# Bind by a relative name: socket paths are limited to about 100 bytes.
os.chdir(os.path.dirname(path) or ".")
name = os.path.basename(path)
with socket.socket(socket.AF_UNIX) as server:
    server.bind(name)
    server.listen()
    while True:
        connection, _ = server.accept()
        with connection:
            question = connection.recv(1024).decode()
            connection.sendall(f"answer to {question}\n".encode())
