"""``attest pack``: a byte-for-byte reproducible zip, tarball or OCI image of a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from attest.cli._options import OutputPath, emit_json

_LAYOUT = "oci-layout:"


class _PackOutput(OutputPath):
    """An archive file (checked as every output file is), or ``oci-layout:PATH[:TAG]`` (an image layout
    folder, checked when it is written)."""

    name = "output"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith(_LAYOUT):
            return value
        return super().convert(value, param, ctx)


@click.command()
@click.argument("directory", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
@click.option("--output", "-o", "output", required=True, type=_PackOutput(), metavar="FILE|oci-layout:DIR[:TAG]",
              help="The archive to write: FILE.zip, FILE.tar.gz (or .tgz) or FILE.tar; or an OCI image layout "
                   "folder holding a single-layer image of DIRECTORY, tagged TAG if given.")
@click.option("--platform", default="linux/amd64", show_default=True, metavar="OS/ARCH",
              help="With oci-layout: the image's platform (its config's os and architecture).")
@click.option("--base", metavar="oci-layout:DIR[:TAG]",
              help="With oci-layout: put the layer on top of this image (from another OCI image layout; for a "
                   "multi-platform base, its --platform image), keeping its layers, environment and entrypoint.")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "zip", "tar", "oci"]), default="text",
              show_default=True,
              help="text or json: how the result is reported (the archive's format is then --output's suffix, or "
                   "oci-layout:). zip, tar or oci: the archive's format, whatever --output's name (a suffix that "
                   "names another format is refused), reported as text.")
def pack(directory: Path, output: Path | str, platform: str, base: str | None, output_format: str) -> None:
    """Pack DIRECTORY into a reproducible archive (Lambda zips, CloudFormation bundles) or container image.

    The same file contents always give the same bytes: entries sorted, every
    timestamp set to SOURCE_DATE_EPOCH (from the environment, else the commit
    time of HEAD, else 1980-01-01), modes 0644/0755, no owner, no extra
    fields, gzip without name or time. Symbolic links are refused. An OCI
    image is one such layer, with a config and a manifest written
    canonically: the same directory gives the same image digest anywhere.

    \b
    Examples:
      attest pack build/lambda --output dist/function.zip
      attest pack build/site --output oci-layout:dist/site-image:v1
      attest pack build/lambda --output dist/function --format zip
      attest pack build/site --output oci-layout:dist/site-image:v1 --base oci-layout:base/nginx:1.27
      attest build --signer dev-build.pem --artifact dist/function.zip -- make lambda
    """
    output, kind = _as_asked(output, output_format)
    if isinstance(output, str):
        _pack_image(directory, output, platform, base, output_format)
        return
    if base is not None:
        raise click.UsageError("--base is for an image (--output oci-layout:DIR[:TAG]), not an archive")
    from attest.pack import pack as pack_directory

    result = pack_directory(directory, output, kind=kind)
    if output_format == "json":
        emit_json({"output": str(result.output), "format": result.format, "files": result.files,
                   "directories": result.directories, "sourceDateEpoch": result.source_date_epoch,
                   "sourceDateEpochFrom": result.epoch_source, "digest": dict(result.digests)})
    else:
        click.echo(f"packed {result.files} file(s) of {directory} -> {result.output} ({result.format}, "
                   f"SOURCE_DATE_EPOCH={result.source_date_epoch} from {result.epoch_source})")
        click.echo(f"  sha256:{result.digests['sha256']}")


def _as_asked(output: Path | str, output_format: str) -> tuple[Path | str, Any]:
    """(--output as --format asks it to be written, the archive format): ``--format zip|tar|oci`` chooses the format
    (a tar is plain, unless --output ends in .tar.gz or .tgz), a suffix naming another one is refused; ``text`` or
    ``json`` leave it to --output (a suffix, or oci-layout:)."""
    from attest.pack import FORMATS, archive_format

    named = "oci" if isinstance(output, str) else archive_format(output)
    if output_format in ("text", "json"):
        if named is None:
            raise click.BadParameter(f"{output} does not end in {', '.join(FORMATS)}; the suffix chooses the "
                                     "archive format (or give --format zip, tar or oci)", param_hint="--output")
        return output, None if named == "oci" else named
    if output_format == "oci":
        if named not in (None, "oci"):
            raise click.BadParameter(f"--format oci writes an OCI image layout, and {output} names a {named} file; "
                                     "give a folder for the layout, or another --format", param_hint="--output")
        return output if isinstance(output, str) else f"{_LAYOUT}{output}", None
    if named == "oci" or named not in (None, output_format, *(("tar.gz",) if output_format == "tar" else ())):
        raise click.BadParameter(f"--format {output_format} writes a {output_format} archive, and {output} names "
                                 f"{'an OCI image layout' if named == 'oci' else 'a ' + str(named) + ' file'}; "
                                 "name the output after the format, or give another --format", param_hint="--output")
    return output, named or output_format


def _pack_image(directory: Path, output: str, platform: str, base: str | None, output_format: str) -> None:
    from attest.errors import BuildRefused
    from attest.oci_layout import pack_oci, parse_layout

    try:
        ref = parse_layout(output)
    except BuildRefused as e:
        raise click.BadParameter(str(e), param_hint="--output") from e
    try:
        base_ref = parse_layout(base) if base is not None else None
    except BuildRefused as e:
        raise click.BadParameter(str(e), param_hint="--base") from e
    result = pack_oci(directory, ref.path, tag=ref.tag, platform=platform, base=base_ref)
    if output_format == "json":
        emit_json({"output": output, "format": "oci", "layout": str(result.layout), "tag": result.tag,
                   "manifest": {"digest": result.manifest, "size": result.manifest_size},
                   "config": result.config, "layer": result.layer, "diffId": result.diff_id,
                   "platform": result.platform, "files": result.files, "directories": result.directories,
                   "sourceDateEpoch": result.source_date_epoch, "sourceDateEpochFrom": result.epoch_source})
    else:
        click.echo(f"packed {result.files} file(s) of {directory} -> {result.layout}"
                   f"{':' + result.tag if result.tag else ''} (OCI image, {result.platform}, "
                   f"SOURCE_DATE_EPOCH={result.source_date_epoch} from {result.epoch_source})")
        click.echo(f"  {result.manifest}")
