"""``attest key``: local key pairs, and pinned PEM copies of KMS public keys."""

from __future__ import annotations

import os
from pathlib import Path

import click

from attest.cli._options import OutputPath, emit_json, format_option


@click.group()
def key() -> None:
    """Generate local key pairs; export KMS public keys to pinned PEM files."""


@key.command()
@click.option("--out", "prefix", required=True, metavar="PREFIX", type=OutputPath(dir_okay=True),
              help="Writes PREFIX.pem (private, mode 0600) and PREFIX.pub.pem (public).")
@click.option("--type", "key_type", default="ecdsa-p256", show_default=True,
              type=click.Choice(["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072"]))
@click.option("--force", is_flag=True, help="Replace existing files.")
@format_option
def generate(prefix: str, key_type: str, force: bool, output_format: str) -> None:
    """Generate a signing key pair.

    The private key is PKCS#8 PEM, encrypted when ATTEST_KEY_PASSWORD is set.
    Pin PREFIX.pub.pem in the verifiers' policy.
    """
    from attest._atomic import write_atomic
    from attest.errors import OutputError, SignerError
    from attest.signers.key import generate as generate_pair
    from verify.trust import load_public_key

    private_path, public_path = Path(f"{prefix}.pem"), Path(f"{prefix}.pub.pem")
    try:
        if not force:
            for path in (private_path, public_path):
                if path.exists():
                    raise SignerError(f"{path} already exists; pass --force to replace it or choose another --out")
        private_pem, public_pem = generate_pair(key_type)
        # without --force, neither file is ever replaced, even by a generate running at the same moment; a public
        # key that cannot be written takes its private key away with it, and with --force puts the old one back:
        # never half a pair, never a pair lost
        replaced = private_path.read_bytes() if force and private_path.is_file() and not private_path.is_symlink() \
            else None
        write_atomic(private_path, private_pem, mode=0o600, exclusive=not force)
        try:
            write_atomic(public_path, public_pem, mode=0o644, exclusive=not force)
        except BaseException:
            if replaced is not None:
                write_atomic(private_path, replaced, mode=0o600)
            else:
                private_path.unlink(missing_ok=True)
            raise
    except FileExistsError as e:
        raise SignerError(f"{e.filename or prefix} already exists; pass --force to replace it or choose another "
                          "--out") from None
    except OSError as e:
        raise OutputError(f"cannot write the key pair {prefix}: {e.strerror or e}") from e
    fingerprint = load_public_key(public_pem, name=str(public_path)).fingerprint
    encrypted = bool(os.environ.get("ATTEST_KEY_PASSWORD"))
    if output_format == "json":
        emit_json({"private": str(private_path), "public": str(public_path), "type": key_type,
                   "fingerprint": fingerprint, "encrypted": encrypted})
    else:
        click.echo(f"wrote {private_path} (private, {'encrypted' if encrypted else 'unencrypted'}) "
                   f"and {public_path} ({key_type}, sha256:{fingerprint[:16]}...)")


@key.command()
@click.argument("uri", metavar="awskms:KEY")
@click.option("--out", "out", type=OutputPath(), default=None,
              help="Where to write the PEM (default: <key id or alias>.pub.pem).")
@format_option
def export(uri: str, out: Path | None, output_format: str) -> None:
    """Export a KMS key's public key (kms:GetPublicKey) to a pinned PEM file.

    Verification then needs no AWS access: pin the PEM in the policy.
    """
    from attest._atomic import write_atomic
    from attest.errors import SignerError
    from verify.policy_file import kms_pem_name
    from verify.trust import load_public_key

    if not uri.startswith("awskms:"):
        raise click.BadParameter("only awskms: keys can be exported; local keys already have PREFIX.pub.pem",
                                 param_hint="URI")
    from attest.signers import awskms

    pem = awskms.export_public_key_pem(uri)
    out = out or Path(kms_pem_name(uri.removeprefix("awskms:")))
    if (out.exists() or out.is_symlink()) and _existing(out) != pem:
        raise SignerError(f"{out} already holds another key; remove it or choose another --out")
    write_atomic(out, pem)
    fingerprint = load_public_key(pem, name=uri).fingerprint
    if output_format == "json":
        emit_json({"key": uri, "public": str(out), "fingerprint": fingerprint})
    else:
        click.echo(f"wrote {out} (public key of {uri.removeprefix('awskms:')}, sha256:{fingerprint[:16]}...)")


def _existing(out: Path) -> bytes:
    """What ``out`` already holds (a regular file of key size, or one sentence why it cannot be compared)."""
    from attest.errors import SignerError
    from verify.files import read_file
    from verify.limits import MAX_KEY_BYTES

    return read_file(out, what="--out", limit=MAX_KEY_BYTES, error=SignerError)
