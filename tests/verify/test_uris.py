"""verify.formats.uris: repository URIs compared the way people mean them (DESIGN's normalisation table)."""

from __future__ import annotations

import pytest

from verify.formats.uris import branch_of, normalize_repo, split_source_uri

SAME_REPO = [
    "git+https://GitHub.com/acme/app.git@refs/heads/main",
    "github.com/acme/app",
    "git@github.com:acme/app.git",
    "https://github.com/acme/app",
    "https://github.com/acme/app/",
    "https://github.com/acme/app.git/",
    "https://x-access-token:secret@github.com:443/acme/app.git",
    "https://user@GITHUB.COM/acme/app",
    "ssh://git@github.com/acme/app.git",
    "ssh://git@github.com:22/acme/app",
    "git+ssh://git@github.com/acme/app.git@0123456789abcdef0123456789abcdef01234567",
    "git+git@github.com:acme/app.git@refs/heads/main",
    "github.com:acme/app",
    "  https://github.com/acme/app  ",
]


@pytest.mark.parametrize("uri", SAME_REPO)
def test_one_repository_many_spellings(uri: str) -> None:
    assert normalize_repo(uri) == "github.com/acme/app"


@pytest.mark.parametrize(
    "uri",
    [
        "github.com/acme/app2",
        "github.com/acme/ap",
        "github.com/other/app",
        "gitlab.com/acme/app",
        "github.com.evil.example/acme/app",
        "https://github.com@evil.example/acme/app",  # user info is not the host
        "git@evil.example:acme/app.git",
        "github.com/acme/app/sub",
        "github.com/acme",
        "https://github.com/acme/app.git.git",
    ],
)
def test_different_repositories_differ(uri: str) -> None:
    assert normalize_repo(uri) != "github.com/acme/app"


def test_host_only() -> None:
    assert normalize_repo("https://Example.COM/") == "example.com"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "git+https://github.com/acme/app@refs/heads/main",
            ("https://github.com/acme/app", "refs/heads/main"),
        ),
        ("git+https://github.com/acme/app.git@abc123", ("https://github.com/acme/app.git", "abc123")),
        ("https://github.com/acme/app", ("https://github.com/acme/app", None)),
        ("https://user:pw@github.com/acme/app", ("https://user:pw@github.com/acme/app", None)),
        ("https://user@github.com/acme/app@v1", ("https://user@github.com/acme/app", "v1")),
        ("git@github.com:acme/app.git", ("git@github.com:acme/app.git", None)),
        ("git@github.com:acme/app.git@main", ("git@github.com:acme/app.git", "main")),
        ("git+https://github.com/acme/app@", ("https://github.com/acme/app", None)),
        ("github.com/acme/app@refs/tags/v1", ("github.com/acme/app", "refs/tags/v1")),
    ],
)
def test_split_source_uri(uri: str, expected: tuple[str, str | None]) -> None:
    assert split_source_uri(uri) == expected


@pytest.mark.parametrize(
    ("ref", "branch"),
    [
        ("refs/heads/main", "main"),
        ("refs/heads/release/1.x", "release/1.x"),
        ("main", "main"),
        ("refs/tags/v1.0", None),
        ("refs/pull/7/merge", None),
        (None, None),
    ],
)
def test_branch_of(ref: str | None, branch: str | None) -> None:
    assert branch_of(ref) == branch
