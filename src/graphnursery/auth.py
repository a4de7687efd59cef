"""Who is calling: an API key (:func:`parse_api_keys`) or a JWT (verified by PyJWT with an
HMAC secret or a JWKS's keys), as a :class:`Caller`; a refusal is an :class:`AuthError`
(``errors.py``).

Blocking: with a JWKS configured (``needs_thread``), ``authenticate`` may read the file or
fetch the URL (up to ``JWKS_FETCH_TIMEOUT`` s) when its keys are older than ``jwks_lifespan``
or a token names a kid they lack, at most once per ``KID_REFRESH_INTERVAL`` s. Call it off
the event loop then, and ``prefetch()`` once at startup (in a thread too). No Quart, no Trio.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import AuthError  # raised here; defined with the others
from .logs import get_logger

if TYPE_CHECKING:
    from ._jwt import Jwks

log = get_logger("graphnursery.auth")

REASONS = AuthError.REASONS
#: HMAC algorithms and the least secret length (bytes) each needs (RFC 7518 section 3.2).
_HMAC_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
#: PyJWT's asymmetric algorithms (with cryptography), written out: PyJWT is imported only
#: when JWTs are configured (it and cryptography cost the server ~9 MiB).
_ASYMMETRIC = frozenset(
    {"ES256", "ES256K", "ES384", "ES512", "ES521", "EdDSA", "PS256", "PS384", "PS512"}
    | {"RS256", "RS384", "RS512"}
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling."""

    workspace: str
    admin: bool = False  # may read across workspaces
    subject: str = ""  # the JWT's sub, or "key:<4 chars at most, a third at most>…"


ANONYMOUS = Caller("default", subject="anonymous")


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What an API key gives: its workspace, and whether it is an admin's."""

    workspace: str = "default"
    admin: bool = False


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """How JWTs are verified: with a ``secret`` (HMAC) or a ``jwks`` (file path or http(s)
    URL). ``algorithms``: ``("HS256",)`` with a secret, ``("RS256", "ES256")`` with a JWKS
    by default. ``issuer``, ``audience`` are checked when set (without an ``audience`` a token
    with ``aud`` is refused). ``exp`` is required. ``ValueError`` names the field at fault."""

    secret: str = ""
    jwks: str = ""
    algorithms: tuple[str, ...] = ()
    issuer: str = ""
    audience: str = ""
    workspace_claim: str = "workspace"
    admin_claim: str = "role"  # admin when "admin", a list holding "admin", or true
    leeway: float = 0.0
    jwks_lifespan: float = 300.0  # seconds before the JWKS is loaded again

    def __post_init__(self) -> None:
        if bool(self.secret) == bool(self.jwks):
            raise ValueError("JwtSettings: set one of secret (HMAC) or jwks (file or URL)")
        if not self.algorithms:
            default = ("HS256",) if self.secret else ("RS256", "ES256")
            object.__setattr__(self, "algorithms", default)
        allowed = _HMAC_SECRET_BYTES.keys() if self.secret else _ASYMMETRIC
        if unfit := [name for name in self.algorithms if name not in allowed]:
            raise ValueError(f"JwtSettings.algorithms: {unfit} do not fit the secret or jwks")
        needed = max((_HMAC_SECRET_BYTES.get(name, 0) for name in self.algorithms), default=0)
        if self.secret and len(self.secret.encode()) < needed:
            raise ValueError(f"JwtSettings.secret: must be at least {needed} bytes long")
        if not 0 <= self.leeway < math.inf:
            raise ValueError(f"JwtSettings.leeway: must be >= 0 seconds, not {self.leeway!r}")
        if not 0 < self.jwks_lifespan < math.inf:
            raise ValueError(f"JwtSettings.jwks_lifespan: must be > 0, not {self.jwks_lifespan!r}")
        if not (self.workspace_claim and self.admin_claim):
            raise ValueError("JwtSettings.workspace_claim, admin_claim: must name a claim")


def parse_api_keys(value: str) -> dict[str, KeyGrant]:
    """``'key1,key2=team-a,key3=team-b:admin'`` to grants; a bare key is the default
    workspace's (``key=default:admin`` for its admin). ``ValueError`` names a bad entry (empty
    key or workspace, unknown flag, key given twice) by position and the start of its key."""
    grants: dict[str, KeyGrant] = {}
    for number, entry in enumerate(value.split(",") if value.strip() else (), start=1):
        key, has_grant, grant = (part.strip() for part in entry.partition("="))
        where = f"API key entry {number} ({_key_subject(key)!r})"
        if not key:
            raise ValueError(f"API key entry {number}: the key is empty")
        workspace, *flags = (part.strip() for part in grant.split(":"))
        if has_grant and not workspace:
            raise ValueError(f"{where}: the workspace after '=' is empty")
        if unknown := [flag for flag in flags if flag != "admin"]:
            raise ValueError(f"{where}: unknown flag {unknown[0]!r} (known: admin)")
        if key in grants:
            raise ValueError(f"{where}: the same key is given twice")
        grants[key] = KeyGrant(workspace or "default", admin="admin" in flags)
    return grants


class Authenticator:
    """A request's credential to a :class:`Caller`; ``clock`` times the JWKS reloads."""

    def __init__(
        self,
        keys: Mapping[str, KeyGrant],
        jwt: JwtSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if any(not key for key in keys):
            raise ValueError("Authenticator: an API key is empty")
        self._keys = [
            (_digest(k), Caller(g.workspace, g.admin, _key_subject(k))) for k, g in keys.items()
        ]
        self._jwt = jwt
        self._jwks: Jwks | None = None
        if jwt and jwt.jwks:
            from ._jwt import Jwks

            self._jwks = Jwks(jwt.jwks, jwt.jwks_lifespan, clock)

    @property
    def enabled(self) -> bool:
        """Whether a key or JWTs are configured (if not, every caller is :data:`ANONYMOUS`)."""
        return bool(self._keys) or self._jwt is not None

    @property
    def needs_thread(self) -> bool:
        """Whether :meth:`authenticate` may block on I/O (a JWKS is configured)."""
        return self._jwks is not None

    def prefetch(self) -> None:
        """Load the JWKS now if there is one (blocking); AuthError ``jwks_unavailable`` if not."""
        if self._jwks is not None:
            self._jwks.load()

    def authenticate(self, authorization: str | None, api_key: str | None) -> Caller:
        """The caller presenting ``Authorization`` (``Bearer <key or JWT>``) or ``x-api-key``
        (a key only). A key is compared in constant time with every configured key; a bearer
        value that is no key and has three dot-separated parts is verified as a JWT when JWTs
        are configured. Raises :class:`AuthError`."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, bearer = (authorization or "").strip().partition(" ")
        if scheme and (scheme.lower() != "bearer" or not (bearer := bearer.strip())):
            raise AuthError("malformed", "the Authorization header must be 'Bearer <key>'")
        presented = (api_key or "").strip()
        if bearer and presented and bearer != presented:  # both are the caller's: no secret
            raise AuthError("malformed", "send one credential: Authorization or x-api-key")
        if not (presented := bearer or presented):
            raise AuthError("missing", "no credential: send 'Authorization: Bearer <key>'")
        digest = _digest(presented)  # a digest: same compare time whatever the length
        if found := [caller for d, caller in self._keys if hmac.compare_digest(digest, d)]:
            return found[0]
        if bearer and self._jwt is not None and bearer.count(".") == 2:
            return self._verify(bearer, self._jwt)
        raise AuthError("unknown_key", "the API key is not valid")

    def _verify(self, token: str, settings: JwtSettings) -> Caller:
        from ._jwt import verify  # PyJWT and cryptography: loaded when JWTs are configured

        return verify(token, settings, self._jwks)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _key_subject(key: str) -> str:
    return f"key:{key[: min(4, len(key) // 3)]}…"
