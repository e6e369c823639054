"""Issue 23, class 7: an S3 listing that would never end (or that says it goes on, with no way to go on) is refused,
not followed (or taken for the whole).

A local HTTP server answers boto3's ListObjectsV2 the way a broken or hostile S3-compatible store (or a
proxy in front of one) could: a continuation token that repeats, keys that go back, a listing that never
stops growing. ``attest audit s3://...`` runs against it as a real process with real boto3 over HTTP,
under a timeout, and must stop with exit 3 and one sentence instead of running forever.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import make_keypair, run_attest

ATTESTATION = b"not an envelope\n"


def _page(prefix: str, keys: list[str], token: str | None, *, truncated: bool = False) -> bytes:
    contents = "".join(f"<Contents><Key>{key}</Key><Size>{len(ATTESTATION)}</Size><ETag>\"e\"</ETag>"
                       "<LastModified>2026-01-01T00:00:00.000Z</LastModified><StorageClass>STANDARD</StorageClass>"
                       "</Contents>" for key in keys)
    more = f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>" if token \
        else f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>bucket</Name><Prefix>{prefix}</Prefix><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
            f"{more}{contents}</ListBucketResult>").encode()


def _key(prefix: str, n: int) -> str:
    return f"{prefix}{hashlib.sha256(str(n).encode()).hexdigest()[:2]}{n:062x}/provenance-{n:064x}.intoto.jsonl"


def _handler(mode: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if "list-type" not in query:  # GetObject: junk bytes, an anomaly of that object
                self._send(200, ATTESTATION, "application/octet-stream")
                return
            prefix = query.get("prefix", [""])[0]
            page = int(query.get("continuation-token", ["0"])[0].removeprefix("t") or 0)
            if mode == "token-repeats":
                body = _page(prefix, [_key(prefix, page)], "t1")
            elif mode == "no-token":  # more to come, says the page, and no way to ask for it
                body = _page(prefix, [_key(prefix, 0)], None, truncated=True)
            elif mode == "keys-go-back":
                body = _page(prefix, [_key(prefix, 5 - page)], f"t{page + 1}")
            elif mode == "empty-pages":  # nothing on any page, a new token on each: it would never end
                body = _page(prefix, [], f"t{page + 1}")
            elif mode == "no-key":  # an entry without its key
                body = _page(prefix, [_key(prefix, 0)], None).replace(b"<Key>", b"<Kex>").replace(b"</Key>", b"</Kex>")
            else:  # never ends: a new token and a later key on every page
                body = _page(prefix, [f"{prefix}{page:064x}/provenance-{page:064x}.intoto.jsonl"], f"t{page + 1}")
            self._send(200, body, "application/xml")

        def do_HEAD(self) -> None:
            self._send(200, b"", "application/xml")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def hostile_s3(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(request.param))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "aws").mkdir()
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws" / "credentials"), "NO_PROXY": "127.0.0.1"}


@pytest.mark.parametrize(("hostile_s3", "words"), [
    ("token-repeats", "repeats a continuation token"),
    ("keys-go-back", "goes back from"),
    ("no-token", "says it goes on but gives no continuation token"),
    ("empty-pages", "goes on with page after empty page"),
    ("no-key", "holds an entry without a key or a size"),
], indirect=["hostile_s3"])
def test_a_listing_that_would_never_end_stops_the_audit(hostile_s3: str, words: str, tmp_path: Path) -> None:
    key = make_keypair(tmp_path, "dev")
    (tmp_path / "policy.yaml").write_text(f'version: 1\nidentities:\n  dev: {{keys: ["{key.public}"]}}\n'
                                          "provenance:\n  signed-by: [dev]\n")
    result = run_attest("audit", "s3://bucket/app", "--policy", "policy.yaml", cwd=tmp_path,
                        env=_env(hostile_s3, tmp_path), timeout=60)
    assert result.code == 3, result
    assert words in result.err and "Traceback" not in result.err and len(result.err.splitlines()) == 1, result


@pytest.mark.parametrize("hostile_s3", ["never-ends"], indirect=True)
def test_a_listing_is_bounded(hostile_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound itself, made small (the real one, ten million keys, is the same code path)."""
    import attest.stores.s3 as s3

    monkeypatch.setattr(s3, "MAX_STORE_KEYS", 5)
    for name, value in _env(hostile_s3, tmp_path).items():
        monkeypatch.setenv(name, value)
    store = s3.S3Store.from_uri("s3://bucket/app")
    with pytest.raises(s3.StoreError, match="goes past 5 keys"):
        list(store.all_attestations())
