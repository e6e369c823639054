#!/usr/bin/env bash
# The attest demo: dev builds once and signs, stg verifies, a tampered artefact is rejected.
# Everything happens in ./demo-out with local keys and a local store: no cloud account needed.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/demo-out"
rm -rf "$out"
mkdir -p "$out"
cd "$out"

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run()  { printf '$ %s\n' "$*"; "$@"; }

export GIT_AUTHOR_NAME="Dev" GIT_AUTHOR_EMAIL="dev@example.com"
export GIT_COMMITTER_NAME="Dev" GIT_COMMITTER_EMAIL="dev@example.com"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
unset ATTEST_KEY_PASSWORD SOURCE_DATE_EPOCH

say "1. Keys: the dev build's signing key, and the stg verifier's key (normally: KMS keys in each account)"
mkdir keys
run attest key generate --out keys/dev-build
run attest key generate --out keys/stg-verifier

say "2. A small app with a lockfile, committed to git"
mkdir app
cd app
git init -q -b main
git remote add origin https://github.com/acme/app.git
cat > requirements.txt <<'REQ'
click==8.1.7 --hash=sha256:ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28
REQ
cat > app.py <<'APP'
print("hello from acme/app")
APP
cat > build.py <<'BUILD'
"""Package the app reproducibly: fixed order, fixed times (SOURCE_DATE_EPOCH), fixed modes."""
import io, os, pathlib, tarfile, gzip
epoch = int(os.environ["SOURCE_DATE_EPOCH"])
pathlib.Path("dist").mkdir(exist_ok=True)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for name in sorted(["app.py", "requirements.txt"]):
        data = pathlib.Path(name).read_bytes()
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = epoch; info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
with open("dist/app.tar.gz", "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=epoch, filename="") as gz:
    gz.write(raw.getvalue())
print("built dist/app.tar.gz")
BUILD
printf 'dist/\n' > .gitignore
git add . && git commit -q -m "acme/app: first release"
echo "commit $(git rev-parse HEAD)"

say "3. dev: build once, sign SLSA provenance with the dev key, publish to the store"
run attest build --signer ../keys/dev-build.pem --artifact dist/app.tar.gz --publish ../store -- python build.py

say "4. The policy stg and prd pin: who may sign provenance, from which repo and branch"
cat > ../policy.yaml <<'POLICY'
version: 1
identities:
  dev-build: {keys: [keys/dev-build.pub.pem]}
  stg-verifier: {keys: [keys/stg-verifier.pub.pem]}
provenance:
  signed-by: [dev-build]
  source: {uri: github.com/acme/app, branches: [main]}
  builders: ["attest:builder:local"]
  digests: [blake3, sha256]
  lockfiles: [requirements.txt]
stages:
  stg: {verifier: stg-verifier}
POLICY
cat ../policy.yaml

say "5. stg: verify the artefact against the store and the policy (no rebuild)"
run attest verify dist/app.tar.gz --store ../store --policy ../policy.yaml

say "6. Someone flips one byte of the artefact: stg must refuse it"
cp dist/app.tar.gz ../tampered.tar.gz
python - ../tampered.tar.gz <<'FLIP'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x01
open(path, "wb").write(bytes(data))
FLIP
set +e
attest verify ../tampered.tar.gz --attestation provenance.intoto.jsonl --policy ../policy.yaml
status=$?
set -e
if [ "$status" -ne 1 ]; then
    echo "demo FAILED: the tampered artefact was not rejected (exit $status)" >&2
    exit 1
fi
echo "-> rejected with exit code $status, as it must be"

say "Summary"
cat <<SUMMARY
  built once in dev:    $(git rev-parse --short HEAD) -> dist/app.tar.gz, provenance signed by keys/dev-build
  verified in stg:      PASS against policy.yaml (signer, source, branch, builder, lockfile, digest)
  tampered artefact:    REJECTED (exit 1)
  everything is in:     $out
SUMMARY
