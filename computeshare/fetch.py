"""One bounded HTTP GET for bytes a hostile party serves (modules by URI, results).

http and https only, no redirects (a redirect could lead to another scheme or host), at
most `max_bytes`, and a deadline on the whole transfer, not just on each read: a server
that drips one byte at a time is cut off like one that does not answer.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request


class FetchError(ValueError):
    """The GET failed, was too large, too slow, redirected, or not http(s)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise FetchError(f"redirected to {newurl[:80]}: not followed")


_OPENER = urllib.request.build_opener(_NoRedirect)
_CHUNK = 16_384


def get(url: str, max_bytes: int, seconds: float) -> bytes:
    """The body at `url`: at most `max_bytes` (more is an error), within `seconds` in all."""
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"{url[:80]!r} is not an http(s) URL")
    deadline = time.monotonic() + seconds
    try:
        with _OPENER.open(url, timeout=seconds) as response:
            body = bytearray()
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(f"took longer than {seconds:.0f} s")
                chunk = response.read1(_CHUNK)
                if not chunk:
                    return bytes(body)
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"larger than {max_bytes} bytes")
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise FetchError(f"{type(error).__name__}: {str(error)[:80]}") from None
