"""auth: API keys and JWTs (HMAC, a JWKS file, a JWKS over HTTP) to a Caller, refusals."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from graphnursery._jwt import KID_REFRESH_INTERVAL
from graphnursery.auth import (
    ANONYMOUS,
    Authenticator,
    AuthError,
    Caller,
    JwtSettings,
    KeyGrant,
    parse_api_keys,
)
from graphnursery.errors import GraphNurseryError

SECRET = "hs256-test-secret-0123456789-abcdefghij"
OTHER_SECRET = "another-secret-0123456789-abcdefghijklmn"
KEYS = "alpha-key-000111,bravo-key-222333=team-a,charlie-key-444555=team-b:admin"


class Clock:
    """A clock the test moves: the JWKS refresh rule's seconds without waiting for them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key_2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}


def jwks_json(*jwks: dict[str, Any]) -> str:
    return json.dumps({"keys": list(jwks)})


def token(key: Any, algorithm: str = "HS256", kid: str | None = None, **claims: Any) -> str:
    """A signed JWT: exp in a minute and the workspace ``team-a`` unless ``claims`` say."""
    payload = {"sub": "user-1", "workspace": "team-a", "exp": int(time.time()) + 60, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> str:
    return f"Bearer {value}"


def refusal(auth: Authenticator, authorization: str | None, api_key: str | None = None) -> str:
    with pytest.raises(AuthError) as caught:
        auth.authenticate(authorization, api_key)
    return caught.value.reason


@pytest.fixture
def keyed() -> Authenticator:
    return Authenticator(parse_api_keys(KEYS))


@pytest.fixture
def hs256() -> Authenticator:
    return Authenticator(parse_api_keys(KEYS), JwtSettings(secret=SECRET))


# -- API keys ---------------------------------------------------------------------------------


def test_a_bare_key_is_the_default_workspace(keyed: Authenticator) -> None:
    caller = keyed.authenticate(bearer("alpha-key-000111"), None)
    assert caller == Caller("default", admin=False, subject="key:alph…")


def test_key_with_a_workspace_and_the_admin_flag(keyed: Authenticator) -> None:
    assert keyed.authenticate(bearer("bravo-key-222333"), None) == Caller(
        "team-a", False, "key:brav…"
    )
    assert keyed.authenticate(bearer("charlie-key-444555"), None) == Caller(
        "team-b", True, "key:char…"
    )


def test_the_x_api_key_header(keyed: Authenticator) -> None:
    assert keyed.authenticate(None, "bravo-key-222333").workspace == "team-a"
    assert keyed.authenticate("", " bravo-key-222333 ").workspace == "team-a"
    # The same key in both headers is one credential; two different ones are refused.
    assert keyed.authenticate(bearer("bravo-key-222333"), "bravo-key-222333").workspace == "team-a"
    assert refusal(keyed, bearer("bravo-key-222333"), "alpha-key-000111") == "malformed"


def test_a_wrong_key_is_unknown(keyed: Authenticator) -> None:
    assert refusal(keyed, bearer("alpha-key-000112")) == "unknown_key"
    assert refusal(keyed, bearer("alpha-key-000111,bravo-key-222333")) == "unknown_key"
    assert refusal(keyed, None, "nope") == "unknown_key"
    # A JWT-looking value is just a wrong key when no JWT is configured.
    assert refusal(keyed, bearer(token(SECRET))) == "unknown_key"


def test_no_credential_is_missing(keyed: Authenticator) -> None:
    assert refusal(keyed, None, None) == "missing"
    assert refusal(keyed, "  ", "") == "missing"


def test_an_authorization_header_that_is_not_bearer_is_malformed(keyed: Authenticator) -> None:
    assert refusal(keyed, "Basic YWxwaGE6eA==") == "malformed"
    assert refusal(keyed, "Bearer") == "malformed"
    assert keyed.authenticate("bearer   alpha-key-000111  ", None).workspace == "default"


def test_the_subject_shows_at_most_a_third_of_a_short_key() -> None:
    auth = Authenticator({"secret": KeyGrant(), "k": KeyGrant()})
    assert auth.authenticate(bearer("secret"), None).subject == "key:se…"
    assert auth.authenticate(bearer("k"), None).subject == "key:…"


def test_nothing_configured_lets_everyone_in_as_anonymous() -> None:
    auth = Authenticator({})
    assert (auth.enabled, auth.needs_thread) == (False, False)
    assert auth.authenticate(None, None) is ANONYMOUS
    assert Caller("default", admin=False, subject="anonymous") == ANONYMOUS


def test_parse_api_keys() -> None:
    assert parse_api_keys("") == {}
    assert parse_api_keys(" k1 , k2 = team-a , k3=team-b:admin, k4=default:admin") == {
        "k1": KeyGrant("default", False),
        "k2": KeyGrant("team-a", False),
        "k3": KeyGrant("team-b", True),
        "k4": KeyGrant("default", True),
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("k1,,k2", "entry 2: the key is empty"),
        ("k1,", "entry 2: the key is empty"),
        ("=team-a", "entry 1: the key is empty"),
        ("k1,longer-key-9=", "entry 2 ('key:long…'): the workspace after '=' is empty"),
        ("longer-key-9=:admin", "entry 1 ('key:long…'): the workspace after '=' is empty"),
        ("longer-key-9=team-a:root", "entry 1 ('key:long…'): unknown flag 'root'"),
        ("longer-key-9,longer-key-9=b", "entry 2 ('key:long…'): the same key is given twice"),
    ],
)
def test_parse_api_keys_names_the_bad_entry(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match="API key") as caught:
        parse_api_keys(value)
    assert problem in str(caught.value)
    assert "longer-key-9" not in str(caught.value)


# -- JWTs with a shared secret ----------------------------------------------------------------


def test_hs256_takes_the_workspace_and_subject_from_the_claims(hs256: Authenticator) -> None:
    assert hs256.authenticate(bearer(token(SECRET)), None) == Caller("team-a", False, "user-1")
    assert hs256.authenticate(bearer(token(SECRET, sub=None)), None).subject == ""
    # Keys still work beside JWTs.
    assert hs256.authenticate(bearer("bravo-key-222333"), None).workspace == "team-a"
    assert (hs256.enabled, hs256.needs_thread) == (True, False)


def test_a_custom_workspace_claim() -> None:
    auth = Authenticator({}, JwtSettings(secret=SECRET, workspace_claim="tenant"))
    caller = auth.authenticate(bearer(token(SECRET, workspace=None, tenant="acme")), None)
    assert caller.workspace == "acme"
    assert refusal(auth, bearer(token(SECRET))) == "no_workspace"


@pytest.mark.parametrize(
    ("role", "admin"),
    [("admin", True), (["reader", "admin"], True), (True, True), ("reader", False),
     (["reader"], False), ("Admin", False), (1, False), (None, False)],
)  # fmt: skip
def test_admin_from_the_role_claim(hs256: Authenticator, role: object, admin: bool) -> None:
    assert hs256.authenticate(bearer(token(SECRET, role=role)), None).admin is admin


def test_admin_from_a_custom_claim() -> None:
    auth = Authenticator({}, JwtSettings(secret=SECRET, admin_claim="roles"))
    assert auth.authenticate(bearer(token(SECRET, roles=["admin"])), None).admin
    assert not auth.authenticate(bearer(token(SECRET, role="admin")), None).admin


def test_an_expired_token(hs256: Authenticator) -> None:
    assert refusal(hs256, bearer(token(SECRET, exp=int(time.time()) - 30))) == "expired"
    lenient = Authenticator({}, JwtSettings(secret=SECRET, leeway=60))
    assert lenient.authenticate(bearer(token(SECRET, exp=int(time.time()) - 30)), None)


def test_a_token_not_valid_yet(hs256: Authenticator) -> None:
    assert refusal(hs256, bearer(token(SECRET, nbf=int(time.time()) + 600))) == "not_yet_valid"
    assert refusal(hs256, bearer(token(SECRET, iat=int(time.time()) + 600))) == "not_yet_valid"


def test_a_token_signed_with_another_secret(hs256: Authenticator) -> None:
    assert refusal(hs256, bearer(token(OTHER_SECRET))) == "bad_signature"


def test_the_issuer_is_checked_when_set() -> None:
    auth = Authenticator({}, JwtSettings(secret=SECRET, issuer="https://idp.example"))
    assert auth.authenticate(bearer(token(SECRET, iss="https://idp.example")), None)
    assert refusal(auth, bearer(token(SECRET, iss="https://evil.example"))) == "wrong_issuer"
    assert refusal(auth, bearer(token(SECRET))) == "wrong_issuer"  # no iss at all


def test_the_audience_is_checked_when_set(hs256: Authenticator) -> None:
    auth = Authenticator({}, JwtSettings(secret=SECRET, audience="graphnursery"))
    assert auth.authenticate(bearer(token(SECRET, aud="graphnursery")), None)
    assert auth.authenticate(bearer(token(SECRET, aud=["other", "graphnursery"])), None)
    assert refusal(auth, bearer(token(SECRET, aud="other"))) == "wrong_audience"
    assert refusal(auth, bearer(token(SECRET))) == "wrong_audience"  # no aud at all
    # PyJWT's rule: with no audience configured, a token naming one is refused.
    assert refusal(hs256, bearer(token(SECRET, aud="graphnursery"))) == "wrong_audience"


@pytest.mark.parametrize("workspace", [None, "", 7, ["team-a"]])
def test_the_workspace_claim_must_be_a_non_empty_string(
    hs256: Authenticator, workspace: object
) -> None:
    claims: dict[str, Any] = {"workspace": workspace} if workspace is not None else {}
    payload = {"sub": "u", "exp": int(time.time()) + 60, **claims}
    assert refusal(hs256, bearer(jwt.encode(payload, SECRET, algorithm="HS256"))) == (
        "no_workspace"
    )


def test_malformed_tokens(hs256: Authenticator) -> None:
    assert refusal(hs256, bearer("not.a.jwt")) == "malformed"
    assert refusal(hs256, bearer("bm90IGpzb24.e30.c2ln")) == "malformed"  # header: "not json"
    # Well formed, but the signature is missing or is another payload's.
    assert refusal(hs256, bearer("eyJhbGciOiJIUzI1NiJ9.e30.")) == "bad_signature"
    header, _, signature = token(SECRET).split(".")
    _, other, _ = token(SECRET, workspace="team-b").split(".")
    assert refusal(hs256, bearer(f"{header}.{other}.{signature}")) == "bad_signature"
    # exp is required.
    assert refusal(hs256, bearer(token(SECRET, exp=None))) == "malformed"
    # An algorithm that is not the configured one, "none" included.
    assert refusal(hs256, bearer(token(SECRET * 2, algorithm="HS512"))) == "malformed"
    unsigned = jwt.encode({"workspace": "a", "exp": time.time() + 60}, None, algorithm="none")
    assert refusal(hs256, bearer(unsigned)) == "malformed"
    # Not three parts: not a JWT, so a wrong key.
    assert refusal(hs256, bearer("a.b")) == "unknown_key"


def test_an_hs256_token_is_refused_by_a_jwks_authenticator(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(jwks_json(rsa_jwk(rsa_key, "r1")))
    auth = Authenticator({}, JwtSettings(jwks=str(path)))
    assert refusal(auth, bearer(token(SECRET, kid="r1"))) == "malformed"  # alg not accepted


# -- JWKS file --------------------------------------------------------------------------------


def test_rs256_and_es256_from_a_jwks_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(jwks_json(rsa_jwk(rsa_key, "rsa-1"), ec_jwk(ec_key, "ec-1")))
    auth = Authenticator({}, JwtSettings(jwks=str(path), audience="gn"), clock=Clock())
    assert auth.needs_thread
    rs = token(rsa_key, "RS256", kid="rsa-1", aud="gn", workspace="team-r")
    es = token(ec_key, "ES256", kid="ec-1", aud="gn", workspace="team-e", role="admin")
    assert auth.authenticate(bearer(rs), None) == Caller("team-r", False, "user-1")
    assert auth.authenticate(bearer(es), None) == Caller("team-e", True, "user-1")
    # Signed by one key but naming the other's kid.
    assert refusal(auth, bearer(token(ec_key, "ES256", kid="rsa-1", aud="gn"))) == "malformed"
    forged = token(rsa_key, "RS256", kid="ec-1", aud="gn")
    assert refusal(auth, bearer(forged)) == "malformed"  # RS256 against an EC key: alg mismatch
    assert refusal(auth, bearer(token(rsa_key, "RS256", aud="gn"))) == "unknown_kid"  # no kid


def test_an_unknown_kid_reloads_the_file_at_most_once_per_interval(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, rsa_key_2: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(jwks_json(rsa_jwk(rsa_key, "old")))
    clock = Clock()
    auth = Authenticator({}, JwtSettings(jwks=str(path)), clock=clock)
    auth.prefetch()
    assert auth.authenticate(bearer(token(rsa_key, "RS256", kid="old")), None)

    path.write_text(jwks_json(rsa_jwk(rsa_key_2, "new")))  # the key is rotated
    rotated = bearer(token(rsa_key_2, "RS256", kid="new"))
    clock.now += KID_REFRESH_INTERVAL - 0.5  # loaded too recently: not read again
    assert refusal(auth, rotated) == "unknown_kid"
    clock.now += 0.5
    assert auth.authenticate(rotated, None).workspace == "team-a"
    # The old key left the file, so its tokens are refused now.
    assert refusal(auth, bearer(token(rsa_key, "RS256", kid="old"))) == "unknown_kid"


def test_the_file_is_read_again_after_its_lifespan(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(jwks_json(rsa_jwk(rsa_key, "k1")))
    clock = Clock()
    auth = Authenticator({}, JwtSettings(jwks=str(path), jwks_lifespan=60), clock=clock)
    signed = bearer(token(rsa_key, "RS256", kid="k1"))
    assert auth.authenticate(signed, None)
    path.write_text(jwks_json(rsa_jwk(rsa_key, "k2")))  # k1 is revoked
    clock.now += 59
    assert auth.authenticate(signed, None)
    clock.now += 1
    assert refusal(auth, signed) == "unknown_kid"


def test_a_jwks_that_cannot_be_loaded(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "jwks.json"
    clock = Clock()
    auth = Authenticator({}, JwtSettings(jwks=str(path)), clock=clock)
    with pytest.raises(AuthError) as caught:
        auth.prefetch()
    assert caught.value.reason == "jwks_unavailable"
    signed = bearer(token(rsa_key, "RS256", kid="k1"))
    assert refusal(auth, signed) == "jwks_unavailable"
    path.write_text(jwks_json(rsa_jwk(rsa_key, "k1")))
    assert refusal(auth, signed) == "jwks_unavailable"  # a failed load is retried after a while
    clock.now += KID_REFRESH_INTERVAL
    assert auth.authenticate(signed, None)
    # A broken file later: the keys loaded before stay in use.
    path.write_text("[1, 2]")
    clock.now += KID_REFRESH_INTERVAL
    assert refusal(auth, bearer(token(rsa_key, "RS256", kid="k9"))) == "unknown_kid"
    assert auth.authenticate(signed, None)
    with pytest.raises(AuthError, match="cannot be loaded"):
        auth.prefetch()


def test_a_weak_key_in_the_jwks_is_not_trusted(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "jwks.json"
    path.write_text(jwks_json(rsa_jwk(weak, "weak")))
    auth = Authenticator({}, JwtSettings(jwks=str(path)))
    with pytest.warns(jwt.InsecureKeyLengthWarning):  # PyJWT warns when signing
        signed = token(weak, "RS256", kid="weak")
    assert refusal(auth, bearer(signed)) == "bad_signature"


# -- JWKS over HTTP ---------------------------------------------------------------------------


class JwksServer:
    """Serves ``document`` as the JWKS at ``url``; counts the requests."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.requests = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests += 1
                body = served.document.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    served = JwksServer(jwks_json(rsa_jwk(rsa_key, "v1")))
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        served.thread.join()


def test_a_jwks_url_is_fetched_again_for_a_rotated_key(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    clock = Clock()
    auth = Authenticator({}, JwtSettings(jwks=jwks_server.url), clock=clock)
    assert auth.needs_thread
    auth.prefetch()
    assert jwks_server.requests == 1
    for _ in range(3):  # served from the keys loaded
        assert auth.authenticate(bearer(token(rsa_key, "RS256", kid="v1")), None)
    assert jwks_server.requests == 1

    jwks_server.document = jwks_json(ec_jwk(ec_key, "v2"))  # rotated: v1 is gone
    rotated = bearer(token(ec_key, "ES256", kid="v2", workspace="team-z"))
    assert refusal(auth, rotated) == "unknown_kid"  # fetched too recently to fetch again
    assert jwks_server.requests == 1
    clock.now += KID_REFRESH_INTERVAL
    assert auth.authenticate(rotated, None).workspace == "team-z"
    assert jwks_server.requests == 2
    # The removed key is not trusted any more, and made-up kids do not cause fetches.
    assert refusal(auth, bearer(token(rsa_key, "RS256", kid="v1"))) == "unknown_kid"
    assert refusal(auth, bearer(token(rsa_key, "RS256", kid="made-up"))) == "unknown_kid"
    assert jwks_server.requests == 2


def test_a_jwks_url_that_goes_down_keeps_the_keys_of_before(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    auth = Authenticator({}, JwtSettings(jwks=jwks_server.url, jwks_lifespan=30), clock=clock)
    signed = bearer(token(rsa_key, "RS256", kid="v1"))
    assert auth.authenticate(signed, None)  # the first token loads the keys
    jwks_server.document = "<html>bad gateway</html>"
    clock.now += 30
    assert auth.authenticate(signed, None)
    assert jwks_server.requests == 2  # tried, failed, kept the keys


# -- settings and what refusals say -----------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "set one of secret"),
        ({"secret": SECRET, "jwks": "keys.json"}, "set one of secret"),
        ({"secret": "short"}, "JwtSettings.secret"),
        ({"secret": SECRET, "algorithms": ("HS512",)}, "JwtSettings.secret"),  # 64 bytes
        ({"secret": SECRET, "algorithms": ("RS256",)}, "JwtSettings.algorithms"),
        ({"jwks": "keys.json", "algorithms": ("HS256",)}, "JwtSettings.algorithms"),
        ({"jwks": "keys.json", "algorithms": ("none",)}, "JwtSettings.algorithms"),
        ({"secret": SECRET, "leeway": -1}, "JwtSettings.leeway"),
        ({"jwks": "keys.json", "jwks_lifespan": 0}, "JwtSettings.jwks_lifespan"),
        ({"secret": SECRET, "workspace_claim": ""}, "workspace_claim"),
    ],
)
def test_jwt_settings_are_checked(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        JwtSettings(**settings)


def test_jwt_settings_default_algorithms() -> None:
    assert JwtSettings(secret=SECRET).algorithms == ("HS256",)
    assert JwtSettings(jwks="keys.json").algorithms == ("RS256", "ES256")


def test_refusals_never_quote_a_key_or_the_secret(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = parse_api_keys(KEYS)
    hs256 = Authenticator(keys, JwtSettings(secret=SECRET, issuer="i", audience="a"))
    path = tmp_path / "jwks.json"
    path.write_text(jwks_json(rsa_jwk(rsa_key, "k1")))
    jwks = Authenticator(keys, JwtSettings(jwks=str(path)), clock=Clock())
    now = int(time.time())
    attempts = [
        (hs256, None, None),
        (hs256, "Basic eA==", None),
        (hs256, bearer("alpha-key-000111"), "bravo-key-222333"),
        (hs256, bearer("alpha-key-000112"), None),
        (hs256, bearer(token(SECRET, iss="i", aud="a", exp=now - 10)), None),
        (hs256, bearer(token(SECRET, iss="i", aud="a", nbf=now + 100)), None),
        (hs256, bearer(token(OTHER_SECRET, iss="i", aud="a")), None),
        (hs256, bearer(token(SECRET, iss="x", aud="a")), None),
        (hs256, bearer(token(SECRET, iss="i", aud="x")), None),
        (hs256, bearer(token(SECRET, iss="i", aud="a", workspace=None)), None),
        (hs256, bearer("a.b.c"), None),
        (jwks, bearer(token(rsa_key, "RS256", kid="k2")), None),
    ]
    secrets = [*keys, SECRET, SECRET[:8]]
    reasons = set()
    for auth, authorization, api_key in attempts:
        with pytest.raises(AuthError) as caught:
            auth.authenticate(authorization, api_key)
        error = caught.value
        assert isinstance(error, GraphNurseryError)
        reasons.add(error.reason)
        said = " ".join([error.message, str(error), repr(error), str(error.__cause__ or "")])
        assert not [secret for secret in secrets if secret in said], said
    assert reasons == {
        "missing", "malformed", "unknown_key", "expired", "not_yet_valid", "bad_signature",
        "wrong_issuer", "wrong_audience", "no_workspace", "unknown_kid",
    }  # fmt: skip


def test_a_server_without_jwts_never_loads_pyjwt() -> None:
    """PyJWT and cryptography cost the server ~9 MiB: only JWT settings load them."""
    import subprocess
    import sys

    script = (
        "import sys, graphnursery.server\n"
        "from graphnursery import Config\n"
        "Config(graph='examples/echo.py', api_key='k=team').authenticator().authenticate("
        "'Bearer k', None)\n"
        "print('jwt' in sys.modules, 'cryptography' in sys.modules)\n"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert found.stdout.split() == ["False", "False"], found.stderr
