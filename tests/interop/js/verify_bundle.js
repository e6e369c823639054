// Verify a Sigstore bundle with sigstore-js (@sigstore/verify), for tests/interop/test_sigstore_js.py.
//
//   node verify_bundle.js MODULES BUNDLE key HINT PUBLIC_KEY_PEM
//   node verify_bundle.js MODULES BUNDLE keyless TRUSTED_ROOT_JSON IDENTITY ISSUER
//
// MODULES is the directory npm installed @sigstore/verify into. Prints one JSON object:
// {"verified": true, ...} (exit 0), {"verified": false, "code": ..., "message": ...} (exit 1);
// anything else (bad usage, a bundle sigstore-js cannot parse) exits 2.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function main(argv) {
  const [modules, bundlePath, mode, ...rest] = argv;
  const load = createRequire(path.join(path.resolve(modules), 'package.json'));
  const { bundleFromJSON } = load('@sigstore/bundle');
  const { TrustedRoot } = load('@sigstore/protobuf-specs');
  const { Verifier, VerificationError, toSignedEntity, toTrustMaterial } = load('@sigstore/verify');

  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  let verifier;
  let policy;
  if (mode === 'key') {
    // Key-based trust material: no CA, no logs, no timestamps; one public key, found by the bundle's hint.
    const [hint, pemPath] = rest;
    const der = crypto.createPublicKey(fs.readFileSync(pemPath, 'utf8')).export({ type: 'spki', format: 'der' });
    const emptyRoot = TrustedRoot.fromJSON({
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
    });
    const material = toTrustMaterial(emptyRoot, { [hint]: { rawBytes: der } });
    verifier = new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  } else if (mode === 'keyless') {
    const [rootPath, identity, issuer] = rest;
    const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
    verifier = new Verifier(toTrustMaterial(root));
    policy = { subjectAlternativeName: identity, extensions: { issuer } };
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  try {
    const signer = verifier.verify(toSignedEntity(bundle), policy);
    return { verified: true, identity: signer.identity || null };
  } catch (e) {
    if (e instanceof VerificationError || (e && e.name === 'PolicyError')) {
      return { verified: false, code: e.code, message: e.message };
    }
    throw e;
  }
}

try {
  const result = main(process.argv.slice(2));
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(result.verified ? 0 : 1);
} catch (e) {
  process.stderr.write(`verify_bundle.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(2);
}
