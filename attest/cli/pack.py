"""``attest pack``: a byte-for-byte reproducible zip or tarball of a directory."""

from __future__ import annotations

from pathlib import Path

import click

from attest.cli._options import OutputPath, emit_json, format_option


@click.command()
@click.argument("directory", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
@click.option("--output", "-o", "output", required=True, type=OutputPath(),
              metavar="FILE", help="The archive to write: FILE.zip, FILE.tar.gz (or .tgz) or FILE.tar.")
@format_option
def pack(directory: Path, output: Path, output_format: str) -> None:
    """Pack DIRECTORY into a reproducible archive (Lambda zips, CloudFormation bundles).

    The same file contents always give the same bytes: entries sorted, every
    timestamp set to SOURCE_DATE_EPOCH (from the environment, else the commit
    time of HEAD, else 1980-01-01), modes 0644/0755, no owner, no extra
    fields, gzip without name or time. Symbolic links are refused.

    \b
    Example:
      attest pack build/lambda --output dist/function.zip
      attest build --signer dev-build.pem --artifact dist/function.zip -- make lambda
    """
    from attest.pack import FORMATS, archive_format
    from attest.pack import pack as pack_directory

    if archive_format(output) is None:
        raise click.BadParameter(f"{output} does not end in {', '.join(FORMATS)}; the suffix chooses the "
                                 "archive format", param_hint="--output")
    result = pack_directory(directory, output)
    if output_format == "json":
        emit_json({"output": str(result.output), "format": result.format, "files": result.files,
                   "directories": result.directories, "sourceDateEpoch": result.source_date_epoch,
                   "sourceDateEpochFrom": result.epoch_source, "digest": dict(result.digests)})
    else:
        click.echo(f"packed {result.files} file(s) of {directory} -> {result.output} ({result.format}, "
                   f"SOURCE_DATE_EPOCH={result.source_date_epoch} from {result.epoch_source})")
        click.echo(f"  sha256:{result.digests['sha256']}")
