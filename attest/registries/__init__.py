"""Registries: where images and their attestations live, reached over the OCI distribution API.

The edge only: :mod:`attest.registries.client` fetches and sends bytes, :mod:`attest.registries.auth`
finds credentials, :mod:`attest.registries.images` moves images and their referrers; every manifest and
blob read is judged by :mod:`verify.formats.oci` before it is believed.
"""
