"""What a transport failure was, in words a user can act on: the SDK says "Connection error."
for a wrong port, a reset and a dead DNS name alike; the reason is in its exception's chain."""
from __future__ import annotations

import socket


def transport_reason(e: BaseException) -> str:
    """The transport's reason, named ("connection refused", "connection reset by the server",
    "connection timed out", "host not found"), rather than the SDK's "Connection error."; else
    the root exception's text."""
    chain: list[BaseException] = []
    link: BaseException | None = e
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        for kind, name in _TRANSPORT_NAMES:
            if isinstance(link, kind):
                return name
        if isinstance(link, socket.gaierror):
            return f"host not found ({link.strerror})"
        if type(link).__name__ == "RemoteProtocolError":  # httpx: closed without an answer
            return "the server closed the connection without answering"
    root = chain[-1]
    return " ".join(str(root).split()) or type(root).__name__


_TRANSPORT_NAMES = ((ConnectionRefusedError, "connection refused"),
                    (ConnectionResetError, "connection reset by the server"),
                    (TimeoutError, "connection timed out"))
