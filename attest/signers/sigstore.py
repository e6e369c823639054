"""Keyless signing with Sigstore: an OIDC identity token, a Fulcio certificate, a Rekor log entry.

``--signer sigstore`` does not fit the :class:`attest.signers.Signer`
interface: the result is not a signature by a pinned key but a Sigstore bundle
(an ephemeral key's certificate naming the CI identity, and the transparency
log entry that proves when it signed). :class:`KeylessSigner` signs one in-toto
statement through sigstore-python and returns the bundle and its envelope.

Where things come from:

* the identity token: the caller's (``--identity-token`` or
  ``SIGSTORE_ID_TOKEN``), else ambient detection exactly as sigstore-python
  does it (:func:`sigstore.oidc.detect_credential`: GitHub Actions, Google
  Cloud, Buildkite, GitLab, CircleCI). An ambient token is fetched again just
  before signing, so a long build cannot outlive it. The token is never
  logged or put into an error message.
* the Sigstore instance: a ``ClientTrustConfig`` file (a private deployment),
  Sigstore's staging instance, or the public-good instance (both over TUF).

blake3 in keyless attestations
------------------------------
attest's subjects carry ``{"sha256": ..., "blake3": ...}`` (in-toto's DigestSet
allows any algorithm). sigstore-python 4.x validates the statement it is asked
to sign against an allow-list of SHA-2/SHA-3 names and refuses ``blake3``. So
the statement sigstore-python validates is a copy whose digest sets keep only
the algorithms it knows, while the bytes signed, logged and bundled are
attest's statement, exactly (:func:`_exact_statement`). That relies on how
sigstore-python 4.x signs a ``Statement`` (its raw contents), so every result
is checked before it is returned: the bundle's payload must be attest's bytes,
the DSSE signature must verify under attest's own DSSE verifier with the
certificate's key, and sigstore-python's verifier must accept the bundle (chain,
SCT, log entry) for the certificate's identity under the instance's trusted
root. A sigstore-python that signs anything else makes the build fail.

One consequence: sigstore-python's own CLI (``sigstore verify identity
ARTIFACT --bundle ...``) parses the statement with that allow-list and rejects
these bundles; ``attest verify``, cosign, sigstore-go (``gh attestation
verify``) and sigstore-js accept them, and sigstore-python's
``Verifier.verify_dsse`` does too.

No call to a Sigstore service may take longer than :data:`SIGNING_TIMEOUT_SECONDS`
(sigstore-python sets no network timeouts of its own).
"""

from __future__ import annotations

import json
import threading
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from attest.errors import AttestError, RemoteError, SignerError
from verify.formats import strict_json
from verify.formats.encoding import printable
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.sigstore.identity import GITHUB_ACTIONS_ISSUER

__all__ = ["SIGNING_TIMEOUT_SECONDS", "KeylessResult", "KeylessSigner"]

#: The longest attest waits for Sigstore's services (trust root, CA, log) in one step.
SIGNING_TIMEOUT_SECONDS = 120.0

_WHERE_IDENTITIES_COME_FROM = (
    "no identity token for keyless signing: pass --identity-token or set SIGSTORE_ID_TOKEN, or run "
    "where one is ambient (GitHub Actions with 'permissions: id-token: write', GitLab CI with an "
    "id_tokens entry SIGSTORE_ID_TOKEN with aud 'sigstore', Buildkite, Google Cloud)")

T = TypeVar("T")


@dataclass(frozen=True)
class KeylessResult:
    """What keyless signing produced."""

    envelope: Envelope
    """The DSSE envelope inside the bundle."""
    envelope_line: bytes = field(repr=False)
    """That envelope as a ``.intoto.jsonl`` line: the bundle's ``dsseEnvelope`` object, as it is."""
    bundle: bytes = field(repr=False)
    """The Sigstore bundle v0.3 as sigstore-python serialises it: one line of compact JSON, and a newline."""
    identity: str
    """The certificate's identity (its subject alternative name)."""
    issuer: str
    """The OIDC issuer the certificate names."""
    log_index: int
    """The entry's index in the transparency log."""


class KeylessSigner:
    """Signs in-toto statements keylessly against one Sigstore instance."""

    def __init__(self, *, identity_token: str | None = None, trust_config: Path | None = None,
                 staging: bool = False, timeout: float = SIGNING_TIMEOUT_SECONDS) -> None:
        if trust_config is not None and staging:
            raise SignerError("--trust-config and --staging both name a Sigstore instance; give one")
        self._explicit_token = identity_token or None
        self._trust_config_path = trust_config
        self._staging = staging
        self._timeout = timeout
        self._trust_config: Any = None

    def __repr__(self) -> str:
        return f"KeylessSigner(instance={self.instance!r})"

    @property
    def instance(self) -> str:
        """The Sigstore instance, for messages."""
        if self._trust_config_path is not None:
            return str(self._trust_config_path)
        return "Sigstore staging" if self._staging else "Sigstore public-good"

    def prepare(self) -> None:
        """Check, before the build runs, that signing can work: trust material and a usable token."""
        self._load_trust_config()
        _check_token(self._token())

    def sign_statement(self, payload: bytes) -> KeylessResult:
        """Sign ``payload`` (an in-toto statement, as bytes) and log it; return the bundle."""
        trust_config = self._load_trust_config()
        token = self._token()
        _check_token(token)
        try:
            return _with_deadline(lambda: self._sign(trust_config, token, payload), seconds=self._timeout,
                                  what="keyless signing (certificate and log entry)")
        except AttestError:
            raise
        except Exception as e:
            raise _translate(e, token=token) from e

    # -- steps ----------------------------------------------------------------

    def _token(self) -> str:
        if self._explicit_token:
            return self._explicit_token
        from sigstore.oidc import IdentityError, detect_credential

        try:
            token = detect_credential()
        except IdentityError as e:
            raise SignerError("cannot get an ambient identity token for keyless signing: "
                              f"{_one_line(str(e))}; on GitHub Actions grant the job "
                              "'permissions: id-token: write'") from e
        if not token:
            raise SignerError(_WHERE_IDENTITIES_COME_FROM)
        return token

    def _load_trust_config(self) -> Any:
        if self._trust_config is None:
            self._trust_config = _with_deadline(self._read_trust_config, seconds=self._timeout,
                                                what=f"fetching the trust root of {self.instance}")
        return self._trust_config

    def _read_trust_config(self) -> Any:
        from sigstore.models import ClientTrustConfig

        path = self._trust_config_path
        if path is not None:
            from verify.files import read_file
            from verify.limits import MAX_TRUSTED_ROOT_BYTES

            data = read_file(path, what="Sigstore trust config", limit=MAX_TRUSTED_ROOT_BYTES, error=SignerError)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SignerError(f"cannot read Sigstore trust config {path}: not UTF-8 text") from e
            try:
                return ClientTrustConfig.from_json(text)
            except ValueError as e:
                raise SignerError(f"{path} is not a Sigstore ClientTrustConfig "
                                  "(mediaType application/vnd.dev.sigstore.clienttrustconfig.v0.1+json with "
                                  "trustedRoot and signingConfig)") from e
        try:
            return ClientTrustConfig.staging() if self._staging else ClientTrustConfig.production()
        except Exception as e:  # TUF, network and metadata errors alike: the instance is out of reach
            reason = _one_line(str(e)) or type(e).__name__
            raise RemoteError(f"cannot fetch the trust root of {self.instance} over TUF ({reason}); "
                              "check network access or pass --trust-config") from e

    def _sign(self, trust_config: Any, token: str, payload: bytes) -> KeylessResult:
        from sigstore.models import Bundle
        from sigstore.oidc import IdentityToken
        from sigstore.sign import SigningContext

        try:
            context = SigningContext.from_trust_config(trust_config)
        except Exception as e:
            raise SignerError(f"{self.instance} names no usable CA or transparency log "
                              f"({_one_line(str(e)) or type(e).__name__})") from e
        identity_token = IdentityToken(token)
        with context.signer(identity_token, cache=True) as signer:
            bundle = signer.sign_dsse(_exact_statement(payload))
        text = bundle.to_json()
        result = _check_result(Bundle.from_json(text), text, payload=payload, trusted_root=trust_config.trusted_root)
        _as_token_says(result, identity_token, _claims(token))
        return result


# -- blake3: sign attest's exact bytes ----------------------------------------

def _known_digests_only(document: Any, allowed: frozenset[str]) -> Any:
    """A copy of a statement whose subjects' digest sets keep only the ``allowed`` algorithms."""
    if not isinstance(document, dict) or not isinstance(document.get("subject"), list):
        return document
    subjects = []
    for subject in document["subject"]:
        if isinstance(subject, dict) and isinstance(subject.get("digest"), dict):
            subject = {**subject, "digest": {k: v for k, v in subject["digest"].items() if k in allowed}}
        subjects.append(subject)
    return {**document, "subject": subjects}


def _exact_statement(payload: bytes) -> Any:
    """A ``sigstore.dsse.Statement`` that sigstore-python validates without blake3 but that signs ``payload``.

    sigstore-python's model checks the statement's shape (type, subjects,
    predicate type); the digest sets it is shown are the SHA-2/SHA-3 subset of
    ours. What is signed is ``payload`` itself; :func:`_check_result` proves it.
    """
    from sigstore import dsse
    from sigstore.errors import Error

    allowed = frozenset(typing.get_args(dsse.Digest))

    class _ExactStatement(dsse.Statement):
        def __init__(self, contents: bytes) -> None:
            super().__init__(strict_json.dumps_canonical(_known_digests_only(json.loads(contents), allowed)))
            self._contents = contents

    try:
        return _ExactStatement(payload)
    except Error as e:
        raise SignerError("sigstore-python refuses the statement: every subject needs a digest it knows "
                          f"({', '.join(sorted(allowed))})") from e


def _check_result(bundle: Any, text: str, *, payload: bytes, trusted_root: Any) -> KeylessResult:
    """Check the bundle sigstore-python made before anything is written, and describe it.

    (1) its envelope carries attest's exact statement, (2) the DSSE signature
    verifies under attest's own verifier with the certificate's key, (3)
    sigstore-python's verifier accepts chain, SCT and log entry under the
    instance's trusted root, for the identity the certificate names.
    """
    from cryptography.hazmat.primitives import serialization
    from sigstore.verify import Verifier, policy

    from verify.errors import VerifyError
    from verify.formats import strict_json
    from verify.formats.bundle import parse_bundle
    from verify.trust import Identity, load_public_key
    from verify.verifier import verify_signature

    try:
        # (1) exact bytes, read as any verifier reads the bundle (verify.formats.bundle)
        model = parse_bundle(strict_json.loads(text, what="the new bundle"), source="the new keyless bundle")
        envelope = model.envelope
        if envelope is None:
            raise SignerError("sigstore-python made a bundle without a DSSE envelope")
        if envelope.payload != payload or envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            raise SignerError("sigstore-python signed other bytes than attest's statement; this "
                              "sigstore-python version is not supported for keyless signing")
        # (2) the signature, as any DSSE verifier sees it
        certificate = bundle.signing_certificate
        pem = certificate.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        key = load_public_key(pem, name="the signing certificate")
        verify_signature(envelope, [Identity(name="signing certificate", keys=(key,))],
                         source="the new keyless signature")
    except VerifyError as e:
        raise SignerError(f"the keyless signature does not verify with its own certificate: {e}") from e
    # (3) certificate chain, SCT and log entry (a VerificationError becomes a SignerError in _translate)
    identity, issuer = _certificate_identity(certificate)
    Verifier(trusted_root=trusted_root).verify_dsse(bundle, policy.Identity(identity=identity, issuer=issuer))
    entries = model.log_entries
    log_index = entries[0].log_index if entries else None
    if log_index is None:
        raise SignerError("the transparency log answered without a log index for the new entry")
    return KeylessResult(envelope=envelope,
                         envelope_line=strict_json.dumps_canonical(model.document["dsseEnvelope"]) + b"\n",
                         bundle=text.strip().encode("utf-8") + b"\n",
                         identity=identity, issuer=issuer, log_index=log_index)


def _as_token_says(result: KeylessResult, token: Any, claims: Mapping[str, Any]) -> None:
    """The CA certified the identity the token proves, not another: its OIDC issuer (the federated one, where the
    token has one), and its subject where the token says what it is (an email; a GitHub Actions workflow, as
    ``https://github.com/`` and the token's ``job_workflow_ref``). A certificate for another identity would make
    a bundle that verifies, in someone else's name."""
    if result.issuer != token.federated_issuer:
        raise SignerError(f"the CA certified an identity of the OIDC issuer {printable(result.issuer)!r}, and the "
                          f"identity token is {printable(token.federated_issuer)!r}'s; nothing was written: check the "
                          "--trust-config's CA")
    workflow = claims.get("job_workflow_ref")
    expected = (f"https://github.com/{workflow}" if token.issuer == GITHUB_ACTIONS_ISSUER and isinstance(workflow, str)
                else token.identity if "@" in str(token.identity) else None)
    if expected is not None and result.identity != expected:
        raise SignerError(f"the CA certified the identity {printable(result.identity)!r}, and the identity token is "
                          f"{printable(str(expected))!r}'s; nothing was written: check the --trust-config's CA")


def _certificate_identity(certificate: Any) -> tuple[str, str]:
    """(subject alternative name, OIDC issuer) of a Fulcio certificate, read as the verifier reads them."""
    from verify.formats.certificate import read_claims

    try:
        claims = read_claims(certificate)
    except ValueError as e:
        raise SignerError("the CA issued a certificate whose identity extensions are malformed") from e
    if claims.issuer is None:
        raise SignerError("the CA issued a certificate without an identity or an OIDC issuer")
    if not claims.sans:
        raise SignerError("the CA issued a certificate without an identity")
    return claims.sans[0], claims.issuer


# -- tokens, deadlines and errors ---------------------------------------------

def _claims(token: str) -> Mapping[str, Any]:
    """The claims of a JWT, unverified (the CA verifies it); only read to explain expiry early."""
    parts = token.split(".")
    if len(parts) != 3:
        raise SignerError("the identity token is not a JWT (three base64url parts separated by dots)")
    from verify.errors import MalformedEvidence
    from verify.formats.encoding import b64decode

    try:
        claims = json.loads(b64decode(parts[1], what="the identity token's claims"))
    except (MalformedEvidence, ValueError, RecursionError) as e:
        raise SignerError("the identity token is not a JWT: its claims do not decode as JSON") from e
    if not isinstance(claims, dict):
        raise SignerError("the identity token is not a JWT: its claims are not a JSON object")
    return claims


def _check_token(token: str) -> None:
    """Refuse a token that is malformed or outside its validity period, in plain words, never showing it."""
    from sigstore.oidc import IdentityError, IdentityToken

    claims = _claims(token)
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, int | float) and exp <= now:
        raise SignerError(f"the identity token expired {_ago(now - exp)} ago; get a fresh one (they live "
                          "minutes) or let attest fetch an ambient one")
    if isinstance(nbf, int | float) and nbf > now + 5:
        raise SignerError("the identity token is not valid yet (its nbf is in the future); check the clock")
    try:
        IdentityToken(token)
    except IdentityError as e:
        raise SignerError(f"the identity token is not usable for Sigstore: {_one_line(str(e))} "
                          "(it needs iss, sub, iat, exp and the audience 'sigstore')") from e


def _ago(seconds: float) -> str:
    return f"{int(seconds)} s" if seconds < 120 else f"{int(seconds // 60)} min"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _with_deadline(call: Callable[[], T], *, seconds: float, what: str) -> T:
    """Run ``call`` on a daemon thread; give up (RemoteError) if it is not done within ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=run, name="attest-sigstore", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise RemoteError(f"{what} did not finish within {seconds:.0f} s; the Sigstore services are slow or "
                          "unreachable, retry later")
    if "error" in outcome:
        raise outcome["error"]
    return typing.cast(T, outcome["value"])


def _translate(error: Exception, *, token: str) -> AttestError:
    """One sentence for a failure inside sigstore-python; the token never appears in it."""
    import requests
    from sigstore._internal.fulcio.client import FulcioClientError  # not exported by sigstore-python
    from sigstore._internal.rekor import RekorClientError
    from sigstore.errors import Error, VerificationError
    from sigstore.oidc import ExpiredIdentity, IdentityError

    def clean(text: str) -> str:
        return _one_line(text.replace(token, "<token>"))

    if isinstance(error, ExpiredIdentity):
        return SignerError("the identity token expired before the CA was asked for a certificate; "
                           "get a fresh one")
    if isinstance(error, IdentityError):
        return SignerError(f"the identity token is not usable for Sigstore: {clean(str(error))}")
    if isinstance(error, FulcioClientError):
        cause = error.__cause__
        response = getattr(cause, "response", None)
        if response is None:
            reason = clean(str(error)) or "no reason given"
            return RemoteError(f"the Sigstore CA gave no certificate: {reason}")
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text
        return RemoteError(f"the Sigstore CA at {response.url.split('?')[0]} refused to issue a certificate "
                           f"(HTTP {response.status_code}: {clean(message) or 'no reason given'})")
    if isinstance(error, RekorClientError):
        return RemoteError(f"the transparency log refused the entry ({clean(str(error))})")
    if isinstance(error, requests.RequestException):
        url = getattr(getattr(error, "request", None), "url", None) or "a Sigstore service"
        return RemoteError(f"cannot reach {str(url).split('?')[0]} ({type(error).__name__}); "
                           "check the network or the instance's URLs")
    if isinstance(error, VerificationError):
        return SignerError(f"what the Sigstore services returned does not verify against the trusted root "
                           f"({clean(str(error))}); check --trust-config")
    if isinstance(error, Error):
        return SignerError(f"keyless signing failed: {clean(str(error))}")
    if isinstance(error, ValueError | TypeError | KeyError | RecursionError):  # what the services or the trust
        # config gave, which sigstore-python could not read (a log entry without its body, a CA certificate that is
        # no DER): the instance is misconfigured or answers junk
        return SignerError(f"keyless signing failed on what the Sigstore instance or its trust config gave "
                           f"({type(error).__name__}: {clean(str(error)) or 'no detail'}); check --trust-config and "
                           "the instance's services")
    raise error
