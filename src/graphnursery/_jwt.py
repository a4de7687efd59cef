"""JWT verification with PyJWT (see :mod:`graphnursery.auth`): imported only when JWTs are
configured, so a server without them never loads PyJWT and cryptography."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import jwt

from .auth import Caller, JwtSettings
from .errors import AuthError
from .logs import get_logger

log = get_logger("graphnursery.auth")

#: Least seconds between JWKS loads that tokens cause: made-up kids cost a fetch per interval.
KID_REFRESH_INTERVAL = 10.0
JWKS_FETCH_TIMEOUT = 5.0  # seconds
_UNAVAILABLE = "the keys to verify tokens cannot be loaded"


def verify(token: str, settings: JwtSettings, jwks: Jwks | None) -> Caller:
    """A JWT's caller, verified as ``settings`` say (with ``jwks``' keys, if any)."""
    try:
        key: str | jwt.PyJWK = settings.secret
        if jwks is not None:
            key = jwks.key_for(jwt.get_unverified_header(token).get("kid") or "")
        claims = jwt.decode(
            token,
            key,
            algorithms=list(settings.algorithms),
            issuer=settings.issuer or None,
            audience=settings.audience or None,
            leeway=settings.leeway,
            options={"require": ["exp"], "enforce_minimum_key_length": True},
        )
    except jwt.MissingRequiredClaimError as error:
        reason = {"iss": "wrong_issuer", "aud": "wrong_audience"}.get(error.claim, "malformed")
        raise AuthError(reason, f"the token has no {error.claim!r} claim") from error
    except jwt.PyJWTError as error:  # the first that fits; PyJWT's message may quote a key
        raise next(AuthError(r, m) for t, r, m in _REFUSALS if isinstance(error, t)) from error
    workspace = claims.get(settings.workspace_claim)
    if not isinstance(workspace, str) or not workspace:
        name = f"the token's {settings.workspace_claim!r} claim"
        raise AuthError("no_workspace", f"{name} names no workspace")
    role = claims.get(settings.admin_claim)
    admin = role is True or role == "admin" or (isinstance(role, list) and "admin" in role)
    subject = claims.get("sub")
    return Caller(workspace, admin, subject if isinstance(subject, str) else "")


_REFUSALS: list[tuple[type[jwt.PyJWTError], str, str]] = [
    (jwt.ExpiredSignatureError, "expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the token is not valid yet (nbf or iat)"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature does not verify"),
    (jwt.InvalidKeyError, "bad_signature", "the token's signing key is not usable"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token's issuer (iss) is not accepted"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token's audience (aud) is not accepted"),
    (jwt.InvalidAlgorithmError, "malformed", "the token's algorithm (alg) is not accepted"),
    (jwt.PyJWTError, "malformed", "the token is not a valid JWT"),
]


class Jwks:
    """A JWKS's signing keys by kid, loaded again (once per ``KID_REFRESH_INTERVAL`` at most)
    past ``lifespan`` or for a kid they lack; a failed load logs and keeps the keys of before.
    PyJWKClient only fetches: its caches would keep a removed key trusted (``cache_keys``)
    and time its cooldown (30 s, from every fetch) on a clock a test cannot move."""

    def __init__(self, source: str, lifespan: float, clock: Callable[[], float]) -> None:
        url = urlsplit(source)
        self._client: jwt.PyJWKClient | None = None
        self._where = source  # for the log: a URL without its userinfo and query
        if url.scheme in ("http", "https"):
            self._client = jwt.PyJWKClient(source, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT)
            self._where = f"{url.scheme}://{url.hostname}{url.path}"
        self._source, self._lifespan, self._clock = source, lifespan, clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._loaded_at = self._tried_at = -math.inf
        self._lock = threading.Lock()  # one load at a time

    def key_for(self, kid: str) -> jwt.PyJWK:
        keys = self._keys
        if keys is None or kid not in keys or self._clock() - self._loaded_at >= self._lifespan:
            keys = self.load(wait=keys is None, force=False)
        if keys is None:
            raise AuthError("jwks_unavailable", _UNAVAILABLE)
        if kid not in keys:
            raise AuthError("unknown_kid", "the token's key (kid) is not in the JWKS")
        return keys[kid]

    def load(self, wait: bool = True, force: bool = True) -> dict[str, jwt.PyJWK] | None:
        """Load the keys: now, raising a failure (``force``), or if the interval has passed.
        Without ``wait``, the keys of before rather than wait for another thread's load."""
        if not self._lock.acquire(blocking=wait):
            return self._keys
        try:
            now = self._clock()
            if force or now - self._tried_at >= KID_REFRESH_INTERVAL:
                self._tried_at = now
                try:
                    self._keys, self._loaded_at = self._signing_keys(), now
                except AuthError:
                    if force:
                        raise
            return self._keys
        finally:
            self._lock.release()

    def _signing_keys(self) -> dict[str, jwt.PyJWK]:
        try:
            if self._client is not None:
                jwk_set = self._client.get_jwk_set(refresh=True)
            else:
                document = json.loads(Path(self._source).read_text(encoding="utf-8"))
                if not isinstance(document, dict):
                    raise ValueError("a JWKS is a JSON object")
                jwk_set = jwt.PyJWKSet.from_dict(document)
            usable = [k for k in jwk_set.keys if k.public_key_use in ("sig", None)]
            keys = {k.key_id: k for k in usable if k.key_id}
            if not keys:
                raise ValueError("no signing key with a kid")
        except (OSError, ValueError, jwt.PyJWTError) as error:
            # Only the error's type: the text of a JWKS error may quote the key set.
            log.warning("cannot load the JWKS", jwks=self._where, error=type(error).__name__)
            raise AuthError("jwks_unavailable", _UNAVAILABLE) from None
        return keys
