#!/usr/bin/env bash
# The attest demo: dev builds once and signs; stg verifies and signs a VSA; prd requires it;
# a tampered artefact and a hotfix that skipped stg are refused; an offline audit shows the history.
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

say "1. Keys: the dev build's signing key and each stage's verifier key (in AWS: one KMS key per account)"
mkdir keys
run attest key generate --out keys/dev-build
run attest key generate --out keys/stg-verifier
run attest key generate --out keys/prd-verifier

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

say "3. dev: build once, sign SLSA provenance with the dev key, publish artefact and provenance to the store"
run attest build --signer ../keys/dev-build.pem --artifact dist/app.tar.gz --publish ../store -- python build.py
cp dist/app.tar.gz ../release-1.tar.gz

say "4. The policy stg and prd pin: who may sign what, from which repo and branch, and what each stage needs"
cat > ../policy.yaml <<'POLICY'
version: 1
identities:
  dev-build: {keys: [keys/dev-build.pub.pem]}
  stg-verifier: {keys: [keys/stg-verifier.pub.pem]}
  prd-verifier: {keys: [keys/prd-verifier.pub.pem]}
provenance:
  signed-by: [dev-build]
  source: {uri: github.com/acme/app, branches: [main]}
  builders: ["attest:builder:local"]
  digests: [blake3, sha256]
  lockfiles: [requirements.txt]
stages:
  stg: {verifier: stg-verifier}
  prd: {verifier: prd-verifier, require-vsa: [{stage: stg, signed-by: stg-verifier}]}
POLICY
cat ../policy.yaml

say "5. stg: verify against the store and the policy (no rebuild), then sign a VSA: 'stg verified these bytes'"
run attest verify ../release-1.tar.gz --store ../store --policy ../policy.yaml \
    --stage stg --emit-vsa ../stg-vsa.intoto.jsonl --signer ../keys/stg-verifier.pem

say "6. prd: the same bytes pass only because stg's VSA is there; prd records its own VSA"
run attest verify ../release-1.tar.gz --store ../store --policy ../policy.yaml \
    --stage prd --emit-vsa ../prd-vsa.intoto.jsonl --signer ../keys/prd-verifier.pem

say "7. A hotfix is built in dev and pushed straight at prd, skipping stg: prd refuses it"
echo 'print("hotfix")' >> app.py
git commit -q -am "hotfix"
run attest build --signer ../keys/dev-build.pem --artifact dist/app.tar.gz --publish ../store -- python build.py
cp dist/app.tar.gz ../hotfix.tar.gz
expect_exit() {
    local want=$1; shift
    printf '$ %s\n' "$*"
    set +e; "$@"; local got=$?; set -e
    if [ "$got" -ne "$want" ]; then echo "demo FAILED: expected exit $want, got $got" >&2; exit 1; fi
    echo "-> exit $got, as it must be"
}
expect_exit 1 attest verify ../hotfix.tar.gz --store ../store --policy ../policy.yaml --stage prd

say "8. Someone flips one byte of the released artefact: the gate refuses it"
cp ../release-1.tar.gz ../tampered.tar.gz
python - ../tampered.tar.gz <<'FLIP'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x01
open(path, "wb").write(bytes(data))
FLIP
expect_exit 1 attest verify ../tampered.tar.gz --attestation provenance.intoto.jsonl --policy ../policy.yaml

say "9. Flags cannot bypass the gate: they narrow the policy, never widen it (exit 2: a usage error)"
expect_exit 2 attest verify ../hotfix.tar.gz --store ../store --key ../keys/dev-build.pub.pem \
    --stage prd --emit-vsa ../rogue-vsa.intoto.jsonl --signer ../keys/prd-verifier.pem

say "10. An operator with the prd key bypasses the gate with a policy of his own, where prd requires nothing"
sed '/^  prd:/d' ../policy.yaml > ../rogue-policy.yaml
echo '  prd: {verifier: prd-verifier}' >> ../rogue-policy.yaml
run attest verify ../hotfix.tar.gz --store ../store --policy ../rogue-policy.yaml \
    --stage prd --emit-vsa ../rogue-vsa.intoto.jsonl --signer ../keys/prd-verifier.pem

say "11. Anyone, offline, with only the public keys and the real policy: audit the whole history"
set +e
attest audit ../store --policy ../policy.yaml
audit_status=$?
attest audit ../store --policy ../policy.yaml --format html -o ../audit.html
set -e
if [ "$audit_status" -ne 1 ]; then echo "demo FAILED: the audit missed the skipped stage (exit $audit_status)" >&2; exit 1; fi
echo "-> the audit flags the hotfix that reached prd without stg (exit $audit_status)"

say "Summary"
cat <<SUMMARY
  built once in dev:      release-1 and a hotfix, provenance signed by keys/dev-build
  stg:                    verified release-1 (no rebuild) and signed a VSA
  prd:                    release-1 PASSED with stg's VSA; the hotfix that skipped stg was REFUSED (exit 1)
  tampered artefact:      REJECTED (exit 1)
  offline audit:          $out/audit.html (flags the hotfix a rogue prd VSA let through)
  everything is in:       $out
SUMMARY
