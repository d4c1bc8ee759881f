"""Who may use the console: bearer tokens, signed session cookies, CSRF, login throttling.

- API calls send `Authorization: Bearer <token>`; the token is compared with every
  configured user's in constant time (no early exit, so timing says nothing about which
  user or how much of a token matched).
- The page logs in with a form that sets an HttpOnly, SameSite=Strict cookie. The cookie is
  stateless, `<name>.<expiry>.<HMAC(user's token, name|expiry)>`, so any console replica
  accepts it and changing a user's token ends that user's sessions.
- A state-changing call made with the cookie must also carry the session's CSRF token
  (`X-CSRF-Token` header or a `csrf` form field), an HMAC of the cookie; bearer calls carry
  no ambient credential and need none.
- Failed logins are counted per client address: past `LOGIN_LIMIT` in `LOGIN_WINDOW`
  seconds that address gets 429 until the window passes (per replica).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import defaultdict, deque

from gateway.config import ConsoleConfig, ConsoleUser
from gateway.types import ascii_int

COOKIE = "gw_console"
LOGIN_LIMIT = 5
LOGIN_WINDOW = 60.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Auth:
    """Users of `console.users`, sessions and the login throttle."""

    def __init__(self, console: ConsoleConfig) -> None:
        self._users = list(console.users)
        self._by_name = {u.name: u for u in console.users}
        self._ttl = console.session_ttl
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def by_token(self, token: str) -> ConsoleUser | None:
        """The user holding `token`, compared against every user in constant time."""
        supplied = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found: ConsoleUser | None = None
        for user in self._users:
            mine = hashlib.sha256(user.token.reveal().encode()).digest()
            if hmac.compare_digest(supplied, mine):
                found = user
        return found

    def session(self, user: ConsoleUser, now: float) -> str:
        """A session cookie value for `user`."""
        name = _b64(user.name.encode())
        expires = str(int(now + self._ttl))
        return f"{name}.{expires}.{self._mac(user, name, expires)}"

    def by_session(self, value: str, now: float) -> ConsoleUser | None:
        """The user of a valid, unexpired session cookie."""
        parts = value.split(".")
        expires = ascii_int(parts[1], 12) if len(parts) == 3 else None
        if expires is None or expires < now:
            return None
        try:
            user = self._by_name.get(_unb64(parts[0]).decode())
        except (ValueError, UnicodeDecodeError):
            return None
        if user is None:
            return None
        if not hmac.compare_digest(self._mac(user, parts[0], parts[1]), parts[2]):
            return None
        return user

    def csrf(self, user: ConsoleUser, session: str) -> str:
        """The CSRF token that goes with a session."""
        key = user.token.reveal().encode()
        return _b64(hmac.new(key, b"csrf|" + session.encode(), hashlib.sha256).digest())

    def csrf_ok(self, user: ConsoleUser, session: str, supplied: str | None) -> bool:
        """True when `supplied` is the session's CSRF token."""
        return supplied is not None and hmac.compare_digest(self.csrf(user, session), supplied)

    @staticmethod
    def _mac(user: ConsoleUser, name: str, expires: str) -> str:
        key = user.token.reveal().encode()
        message = f"session|{name}|{expires}".encode()
        return _b64(hmac.new(key, message, hashlib.sha256).digest())

    # -- login throttle ----------------------------------------------------------------------

    def throttled(self, client: str, now: float) -> float:
        """Seconds `client` must wait before trying to log in again (0: may try)."""
        failures = self._failures.get(client)
        if not failures:
            return 0.0
        while failures and failures[0] < now - LOGIN_WINDOW:
            failures.popleft()
        if len(failures) < LOGIN_LIMIT:
            return 0.0
        return max(1.0, failures[0] + LOGIN_WINDOW - now)

    def failed(self, client: str, now: float) -> int:
        """Count a failed login of `client`; how many in the window."""
        failures = self._failures[client]
        failures.append(now)
        if len(self._failures) > 10_000:  # a scan from many addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))
        return len(failures)


def now() -> float:
    """The clock the console authenticates with."""
    return time.time()
