"""Audit: many attestations in, one history per artefact and a list of anomalies out.

The plan, one function a step:

  (1) read    attestation files arrive as ``(uri, bytes)``, one at a time; none is kept
  (2) check   each envelope or bundle (in worker processes): parse it, find which policy
              identities sign it -- pinned keys (a keyid only orders the keys tried), or a
              pinned Sigstore identity for a keyless bundle, verified offline against the
              trusted root -- parse its statement and keep a small :class:`_Fact` -- never
              the envelope
  (3) fold    each fact into the record of every artefact it names (by subject sha256),
              judging its signer against what the policy lets that identity sign, and a
              provenance against the source, builder and clean-tree rules
  (4) stored  then each stored artefact's bytes, hashed by the caller, against the sha256 its
              address names (``sha256/<hex>/artifact/NAME``): other bytes are ``tampered-artifact``
  (5) judge   each artefact's whole history once everything is read: stages in the
              policy's order, their times, approvals, and reproducibility across builds
  (6) report  artefacts, releases and anomalies, sorted, as an :class:`AuditReport`

Memory grows with the number of artefacts and the facts about them, not with the bytes read.

With an index (:mod:`verify.audit.index`), steps (2) to (5) run only for what changed: a file whose bytes the
index has seen is not checked, and an artefact none of whose evidence changed (nor what the release manifests
say of it) is not folded nor judged: its judgement and its history's text come from the index, and step (6)
assembles the report from them and from what is judged now, with reproducibility across artefacts, what runs
where and the DORA figures judged over the whole history (:mod:`verify.audit._whole`).

Who signed: the identities of the policy whose pinned keys verify an envelope's
signature, or, for a keyless Sigstore bundle (a certificate and a log entry), the
identities whose ``sigstore`` entries the certificate satisfies once
:mod:`verify.sigstore` has verified the whole bundle against the trusted root. Either
way the signers are identity names, and everything below treats them alike.

Which signer counts for what: a provenance must be signed by an identity in
``provenance.signed-by``; a VSA by its stage's ``verifier`` (or an identity a
``require-vsa`` of another stage names for it), the stage being the one whose
``StageRule.accepts_resource`` takes the VSA's ``resourceUri``; an approval by
the stage's ``require-approvals.signed-by``; a reproduction by any identity of
the policy; a release manifest by ``releases.signed-by`` (a policy without
``releases`` trusts no manifest). A message-signature bundle signs an artefact's sha256 (its
``messageDigest``, else its log entry's), not a statement: verified, and by any
identity of the policy, it is listed as a signature of that artefact, and it is
never a provenance.

Telling a bad signature from an untrusted one: evidence that no pinned signer
verifies is ``bad-signature`` if it claims a pinned signer -- one of its
signatures' keyids (or a bundle's key hint) equals the fingerprint of a pinned
key, or a keyless bundle's certificate names an identity that a ``sigstore``
entry of the policy pins -- and the bytes do not prove it: it was altered after
signing or forged (for a keyless bundle, this includes a certificate or log
entry that the trusted root does not vouch for, as when audit is given another
Sigstore instance's root). Otherwise it is ``untrusted-signer``: signed by a key
or a certificate identity the policy does not pin (an altered envelope whose
keyid names no pinned key looks the same and is reported the same way). A
certificate's claims are read before it is verified only to choose between the
two; they are never believed unverified.

``unverifiable`` is left for a message-signature bundle that names no digest (neither a
``messageDigest`` nor a ``hashedrekord`` log entry): audit has no artefact bytes to check
its signature against.

Cost: keyless bundles are verified natively (:mod:`verify.sigstore._native`, through
:func:`verify.signers.find_signers`): each process reads the trusted root from its path when it
first meets a keyless bundle whose certificate names a pinned identity.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from verify.audit._check import _Fact, _Setup
from verify.audit._collections import AUDIT_GC_THRESHOLDS, fewer_collections, no_collections
from verify.audit._halves import in_two_halves
from verify.audit._judge import _Auditor
from verify.audit._reading import _File, _kept_facts, _read
from verify.audit._whole import Group, anomaly_order, counted, groups_of, out_of_order, reproducibility, running
from verify.audit._whole import dora as _dora
from verify.audit._workers import BATCH_FILES, INLINE_FILES, _facts, start_server
from verify.audit.index import (
    EVERYWHERE,
    FactIndex,
    Judged,
    Listed,
    decode_facts,
    decode_judged,
    encode_judged,
    history_reads_back,
    touches,
)
from verify.audit.report import (
    ANOMALY_KINDS,
    Anomaly,
    ArtifactHistory,
    AuditReport,
    BuildRecord,
    Endorsement,
    Histories,
    HistoryEntry,
    Progress,
    ReleaseComponent,
    ReleaseRecord,
    Source,
    StageHistory,
    StoredArtifact,
    StoredCopy,
    iso_time,
    short_sha,
    when_of,
)
from verify.errors import EvidenceRejected, PolicyError
from verify.policy import Policy
from verify.sigstore.trusted_root import checked_trusted_root

__all__ = [
    "ANOMALY_KINDS",
    "AUDIT_GC_THRESHOLDS",
    "Anomaly",
    "ArtifactHistory",
    "AuditReport",
    "BuildRecord",
    "Endorsement",
    "ReleaseComponent",
    "ReleaseRecord",
    "StageHistory",
    "StoredArtifact",
    "StoredCopy",
    "audit",
    "audit_setup",
    "fewer_collections",
    "no_collections",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")

# --- the whole audit -------------------------------------------------------------------------------------

def audit(sources: Iterable[tuple[str, bytes | EvidenceRejected | Listed]], *, policy: Policy,
          trusted_root: Path | None = None, workers: int | None = None, batch_size: int = BATCH_FILES,
          progress: Progress | None = None, artifacts: Iterable[StoredArtifact] = (),
          index: FactIndex | None = None, reverify: bool = False,
          dora: tuple[datetime, datetime] | None = None, setup: _Setup | None = None,
          mismatched: Sequence[str] = ()) -> AuditReport:
    """Read every attestation file in ``sources`` as ``(uri, bytes)`` and report each artefact's history.

    ``artifacts`` are the stored artefacts, as ``(uri, the sha256 their address claims, the sha256 of
    their bytes or why they could not be read)``, iterated once every attestation is read: bytes that
    do not hash to their address, or cannot be read, are a ``tampered-artifact`` anomaly. (Audit reads
    no artefact itself: the caller hashes them, streaming, from wherever they are stored.)

    Signatures are checked in ``workers`` processes once there is more than one batch of ``batch_size`` files
    (default: one per CPU, started only past the first :data:`INLINE_FILES` files, which this process checks
    sooner than processes start); ``progress`` is called
    with the number of attestations done after each batch. Keyless Sigstore
    bundles are verified offline against ``trusted_root`` (a trusted_root.json;
    None: the production root shipped in sigstore-python, never refreshed).
    Errors raised while iterating ``sources`` (an unreadable file, a store out
    of reach), and a trusted root that cannot be loaded, propagate.

    With ``index`` (:mod:`verify.audit.index`, made for this setup: :func:`audit_setup`), a file whose facts
    the index holds for its place and bytes is not checked again, and an artefact none of whose evidence changed
    (nor the release manifests its judgement rests on) is not judged again: its judgement and history come from
    the index. A source may then be ``(uri, Listed)``: read only if its facts are not in the index. ``reverify``
    checks every file and judges every artefact again, and reports each index entry that disagrees with the
    fresh result (``index-mismatch``). ``dora`` (since, until) adds the DORA figures of that window
    (:mod:`verify.audit.dora`). ``setup`` is the trust to check under, when the caller made it already
    (:func:`audit_setup`: the one an index is keyed by). ``mismatched`` names what else the caller found an index
    entry to say otherwise than a fresh check (``another sha256 for the stored artefact <uri>``), read once
    ``artifacts`` is exhausted: each is an ``index-mismatch``.
    """
    setup = setup or audit_setup(policy, trusted_root)
    inline = INLINE_FILES if workers is None else 0
    workers = workers or os.cpu_count() or 1
    with fewer_collections():
        assembly = _Assembly(policy, setup=setup, index=index, reverify=reverify, workers=workers,
                             batch_size=batch_size, inline=inline)
        if not assembly.reuses_files and workers > 1:  # every file is checked: the workers start at once, their
            start_server()                              # server before the first file is read
            inline = 0
        for file in _read(sources, setup, index=index if assembly.reuses_files else None, keep=index,
                          all_facts=not assembly.keep, reverify=reverify, workers=workers, batch_size=batch_size,
                          inline=inline, progress=progress):
            assembly.add(file)
        if index is not None:
            index.read_done()
        assembly.stored = list(artifacts)
        with no_collections():
            return assembly.report(dora=dora, mismatched=mismatched)


@dataclass(frozen=True, slots=True)
class _ToKeep:
    """What the index keeps of an artefact judged now (:meth:`FactIndex.judge`)."""

    inputs: str
    text: str
    chunk: str
    disagrees: bool
    """With ``reverify``: the index's entry, for the same inputs, said otherwise."""


def audit_setup(policy: Policy, trusted_root: Path | None) -> _Setup:
    """The trust every file is checked under: the policy's pinned identities, rules and revocations, now."""
    identities = [identity for identity in policy.identities.values() if identity.keys or identity.sigstore]
    if not identities:
        raise PolicyError("the policy pins no public key and no Sigstore identity; audit trusts only signatures "
                          "by pinned identities, so name some in the policy or pass --key")
    # unreadable or malformed is a configuration error now, whether a keyless bundle is met or not
    root = hashlib.sha256(checked_trusted_root(trusted_root)).hexdigest() if trusted_root is not None else ""
    # the same rule as verify (verify.signers.find_signers): revoked keys never count, an identity outside
    # its validity window (not-before / not-after, at the time of the audit) signs nothing
    return _Setup(identities=tuple(identities), rules=policy.unnamed_rules(), trusted_root=trusted_root,
                  revoked=policy.revoked, at=datetime.now(UTC),
                  components=tuple((name, policy.for_component(name).provenance)
                                   for name in sorted(policy.components)), trusted_root_sha256=root)


class _Assembly:
    """Steps (3) to (6): fold the facts into records, judge them, and assemble the report; with an index, only the
    artefacts whose evidence (or the release manifests their judgement rests on) changed are folded and judged,
    every other one is read from the index as it was judged."""

    def __init__(self, policy: Policy, *, setup: _Setup, index: FactIndex | None, reverify: bool, workers: int,
                 batch_size: int, inline: int = 0) -> None:
        self.policy, self.setup, self.index, self.reverify = policy, setup, index, reverify
        self.workers, self.batch_size, self.inline = workers, batch_size, inline
        # a stage named "build" would take reproducibility across artefacts into a judgement: never reused then
        self.keep = index is not None and "build" not in policy.stages
        self.kept = index.judgements() if index is not None and self.keep else {}
        """The index's judgements: sha256 -> (inputs, judgement, history text)."""
        self.streaming = self.reverify or not self.kept
        """Every artefact is judged: each file's facts are folded as it comes (never all held at once)."""
        self.reuses_files = index is not None and not reverify and (not self.streaming or not self.keep)
        """A file the index knows is not checked again: its artefacts' judgements are reused, or its facts kept."""
        self.part = _Auditor(policy, setup.at)
        """The records of the artefacts judged in this audit."""
        self.files: list[_File] = []
        self.touching: dict[str, list[int]] = {}
        """The files about each sha256, by their place in ``files``."""
        self.everywhere: list[int] = []
        """The files every judgement may depend on (:data:`EVERYWHERE`)."""
        self.stored: list[StoredArtifact] = []
        self.stored_of: dict[str, list[int]] = {}
        """The stored artefacts of each sha256, by their place in ``stored``."""
        self._decoded: dict[int, list[_Fact]] = {}

    def add(self, file: _File) -> None:
        """The next file, in the order read."""
        n = len(self.files)
        self.files.append(file)
        file.touch = tuple(map(sys.intern, file.touch))  # one string per artefact, however many files name it
        for sha in file.touch:
            if sha == EVERYWHERE:
                self.everywhere.append(n)
            else:
                self.touching.setdefault(sha, []).append(n)
        if self.streaming:
            for fact in self.facts(n):
                self.part.add(fact)
            file.facts = file.read = None  # folded: neither needed again
            self._decoded.pop(n, None)

    def facts(self, n: int) -> list[_Fact]:
        """The facts of the file at ``n``: checked now, or as the index kept them (checked again if those do not
        read back)."""
        file = self.files[n]
        if file.facts is not None:
            return file.facts
        found = self._decoded.get(n)
        if found is not None:
            return found
        assert self.index is not None and file.digest is not None
        kept = self.index.facts(file.uri, file.digest)
        facts = decode_facts(kept, file.uri) if kept is not None else None
        if facts is None:  # an entry that does not read back is a miss: check the file again
            assert file.read is not None  # (a file the index knows is given with a way to read it again)
            payload = file.read()
            facts = self.setup.checker().check_batch([(file.uri, payload)])[0]
            if isinstance(payload, bytes) and hashlib.sha256(payload).hexdigest() == file.digest:
                touch = touches(facts)
                self.index.put(file.uri, file.digest, _kept_facts(facts, touch, every=not self.keep), touch,
                               len(facts))
        self._decoded[n] = facts  # (a file read everywhere is asked for twice: what changed, then folded)
        return facts

    def inputs(self, sha: str, deps: Iterable[str], releases: _Auditor) -> str:
        """The digest of everything an artefact's judgement rests on: the files about it (place and bytes) in
        order, its stored copies as hashed, and what the release manifests say to each of its ``deps``."""
        parts = [f"{len(f.uri)}:{f.uri}{f.digest}" for f in map(self.files.__getitem__, self.touching.get(sha, ()))]
        for n in self.stored_of.get(sha, ()):
            uri, _, found = self.stored[n]
            said = found if isinstance(found, str) else f"{type(found).__name__}: {found}"
            parts.append(f"stored {len(uri)}:{uri}{len(said)}:{said}")
        parts.extend(f"{dep}={releases.release_state(dep)}" for dep in deps)  # a dep has no "="
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _changed(self, clean: dict[str, tuple[Judged | None, str]]) -> list[str]:
        """The artefacts to judge: those whose inputs differ from the index's judgement's (or that it has none
        of); ``clean`` gets the judgement and history of every other one."""
        releases = _Auditor(self.policy)  # the release manifests alone: what judgements depend on beyond their own
        for n in self.everywhere:
            for fact in self.facts(n):
                releases.know_everywhere(fact)
        dirty = []
        for sha in self.touching.keys() | self.stored_of.keys():
            entry = self.kept.get(sha)
            if entry is not None:
                inputs, text, history = entry
                try:
                    judged = decode_judged(text)
                except ValueError:
                    judged, inputs = None, ""  # judged again
                if inputs == self.inputs(sha, judged.deps if judged else (), releases) and (
                        judged is None or history_reads_back(history)):
                    clean[sha] = (judged, history)
                    continue
            dirty.append(sha)
        return sorted(dirty)

    def report(self, *, dora: tuple[datetime, datetime] | None, mismatched: Sequence[str] = ()) -> AuditReport:
        clean: dict[str, tuple[Judged | None, str]] = {}
        dirty = self._fold(clean)
        self.part.judge(dirty)  # (5)
        mismatched = [*(f"other facts for {f.uri}" for f in self.files if f.mismatch), *mismatched]
        fresh: dict[str, tuple[Judged | None, ArtifactHistory | None]] = {}
        if not self.keep:  # (no index, or one that keeps no judgement)
            for sha, judged, history in self._judged(dirty):
                fresh[sha] = (judged, history)
        else:  # kept in the index, as each artefact's judgement comes (half of them made on another core)
            assert self.index is not None
            for sha, judged, kept in in_two_halves(self._to_keep, dirty):
                if kept.disagrees:
                    mismatched.append(f"another judgement of {short_sha(sha)}")
                if sha not in self.part.clocked:  # (one against the clock is judged again next time)
                    self.index.judge(sha, kept.inputs, kept.text, kept.chunk)
                clean[sha] = (judged, kept.chunk)
        return self._assemble(clean, fresh, mismatched, dora=dora)

    def _fold_files(self, positions: Sequence[int]) -> None:
        """Fold the facts of the files at ``positions``, in order: those the index keeps no facts of (the files of
        artefacts judged again; all of them, say, when the sources are named from another folder) are read and
        checked again, on every core."""
        def again(n: int) -> bool:
            file = self.files[n]
            return file.facts is None and self.keep and EVERYWHERE not in file.touch

        def sources() -> Iterator[Source]:
            for n in positions:
                if again(n):
                    file = self.files[n]
                    assert file.read is not None  # (a file the index knows is given with a way to read it again)
                    yield file.uri, file.read()

        checked = _facts(sources(), self.setup, workers=self.workers, batch_size=self.batch_size, inline=self.inline)
        results = (facts for _, batch in checked for facts in batch)
        try:
            for n in positions:
                for fact in next(results) if again(n) else self.facts(n):
                    self.part.add(fact)
        finally:
            checked.close()

    def _fold(self, clean: dict[str, tuple[Judged | None, str]]) -> list[str]:
        """Steps (3) and (4) for the artefacts to judge (each whose evidence changed, or all), which it returns;
        ``clean`` gets the judgement and history text of every other one."""
        odd_stored: list[int] = []
        """Stored artefacts at an address that names no sha256."""
        for n, (_, claimed, _) in enumerate(self.stored):
            if _SHA256.fullmatch(claimed):
                self.stored_of.setdefault(claimed, []).append(n)
            else:
                odd_stored.append(n)
        if self.streaming:  # every file folded in already
            dirty = sorted(self.touching.keys() | self.stored_of.keys())
        else:
            dirty = self._changed(clean)
            if not self.reverify:  # (what reverify compares with): held no longer than needed
                self.kept = {}
            self._fold_files(sorted(set(self.everywhere).union(*(self.touching.get(sha, ()) for sha in dirty))))
            for file in self.files:  # every file needed read: how to read them again is not needed any more
                file.read = None
            self._decoded.clear()
            wanted = set(dirty)  # the records of artefacts not judged again (a release names them) are not needed
            self.part.records = {sha: r for sha, r in self.part.records.items() if sha in wanted}
        for n in sorted(itertools.chain(odd_stored, *(self.stored_of.get(sha, ()) for sha in dirty))):
            self.part.add_stored(*self.stored[n])
        return dirty

    def _judged(self, dirty: Sequence[str]) -> Iterator[tuple[str, Judged | None, ArtifactHistory | None]]:
        """Each artefact judged now, with its judgement and history (None: a sha256 the files name, but no artefact
        of the report); each record dropped once its history is made."""
        part = self.part
        own = part.own_anomalies()
        contexts = part.contexts(dirty)
        for sha in dirty:
            record = part.records.pop(sha, None)
            if record is None:
                yield sha, None, None
                continue
            mine = own.get(sha, [])
            history = part.history(record, mine)
            context = contexts[sha]
            yield sha, Judged(key=_sort_key(history), groups=groups_of(history), deps=context.deps,
                              committed=context.committed, placed=context.placed, anomalies=tuple(mine),
                              exceptional=_exceptional(history)), history

    def _to_keep(self, dirty: Sequence[str]) -> Iterator[tuple[str, Judged | None, _ToKeep]]:
        """Each artefact of ``dirty`` judged, with what the index keeps of it: its history as text (kept so, and
        read back only if asked for: less memory); with ``reverify``, whether the index's entry said otherwise.
        Only computes (:func:`verify.audit._halves.in_two_halves` runs half of it in a copy of this process)."""
        for sha, judged, history in self._judged(dirty):
            text, chunk = encode_judged(judged), _chunk(history) if history is not None else ""
            inputs = self.inputs(sha, judged.deps if judged else (), self.part)
            before = self.kept.get(sha)  # (a mismatch of a file about it is reported, not its consequence here)
            disagrees = self.reverify and before is not None and before[0] == inputs and before[1:] != (
                text, chunk) and not any(self.files[n].mismatch for n in self.touching.get(sha, ()))
            yield sha, judged, _ToKeep(inputs, text, chunk, disagrees)

    def _assemble(self, texts: Mapping[str, tuple[Judged | None, str]],
                  fresh: Mapping[str, tuple[Judged | None, ArtifactHistory | None]], mismatched: Sequence[str], *,
                  dora: tuple[datetime, datetime] | None) -> AuditReport:
        """(6): the report, from the judgements and histories as text (read from the index, or made now and kept
        there) and those made now, with what is judged over the whole history: reproducibility across artefacts,
        what runs where, the DORA figures."""
        part = self.part
        judgements = [(sha, j) for sha, (j, _) in itertools.chain(texts.items(), fresh.items()) if j is not None]
        groups: dict[Group, set[str]] = {}
        for sha, judged in judgements:
            for group in judged.groups:
                groups.setdefault(group, set()).add(sha)
        placed = counted((sha, judged.placed) for sha, judged in judgements)
        whole = reproducibility(groups)
        for sha, found in out_of_order(placed, part.by_line).items():
            whole.setdefault(sha, []).extend(found)
        entries, anomalies = _entries(judgements, texts, fresh, whole)
        anomalies.extend([*part.own_anomalies().get(None, []), *map(_index_mismatch, mismatched)])
        entries.sort(key=lambda e: e.key)
        committed = {sha: judged.committed for sha, judged in judgements if judged.committed is not None}
        exceptional = {e.attestation: e for _, judged in judgements for e in judged.exceptional}
        files = self.files
        return AuditReport(
            artifacts=Histories(entries), anomalies=tuple(sorted(anomalies, key=anomaly_order)), stages=part.order,
            files=len(files), attestations=sum(f.count for f in files), policy_uri=self.policy.uri,
            policy_digest=self.policy.digest,
            releases=tuple(sorted(part.releases.values(), key=lambda r: (r.created, r.name, r.attestation))),
            stored=len(self.stored),
            unread=sum(f.digest is None for f in files) + sum(isinstance(s[2], EvidenceRejected) for s in self.stored),
            dora=_dora(placed, committed, *dora) if dora is not None else None,
            running=running(placed, part.order, part.by_line),
            exceptional=tuple(sorted(exceptional.values(), key=lambda e: (when_of(e), e.attestation))))


def _entries(judgements: Sequence[tuple[str, Judged]], texts: Mapping[str, tuple[Judged | None, str]],
             fresh: Mapping[str, tuple[Judged | None, ArtifactHistory | None]],
             whole: Mapping[str, Sequence[Anomaly]]) -> tuple[list[HistoryEntry], list[Anomaly]]:
    """Each artefact of the report with all its anomalies (its own, and those judged over the whole history: ``whole``),
    and all those anomalies."""
    entries: list[HistoryEntry] = []
    anomalies: list[Anomaly] = []
    for sha, judged in judgements:
        mine = sorted([*judged.anomalies, *whole.get(sha, ())], key=anomaly_order)
        anomalies.extend(mine)
        history = fresh[sha][1] if sha in fresh else None
        if history is not None and len(mine) != len(history.anomalies):
            history = replace(history, anomalies=tuple(mine))
        entries.append(HistoryEntry(key=(*judged.key, sha), sha256=sha, anomalies=tuple(mine), history=history,
                                    text=texts[sha][1] if sha in texts else None))
    return entries, anomalies


def _sort_key(history: ArtifactHistory) -> tuple[str, str]:
    """Where an artefact sorts in the report: by name, then by when it was first built."""
    build = history.build
    return (history.names[0] if history.names else "\uffff",
            (iso_time(build.finished_on) if build is not None else None) or "~")


def _exceptional(history: ArtifactHistory) -> tuple[Endorsement, ...]:
    return tuple(e for stage in history.stages for e in stage.deployments
                 if dict(e.about).get("kind") in ("hotfix", "rollback"))


def _chunk(history: ArtifactHistory) -> str:
    """An artefact's history as the report's JSON prints it, without its anomalies (judged with the whole
    history, and put first when printed: :class:`verify.audit.report.Histories`)."""
    data = history.to_dict()
    del data["anomalies"]
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _index_mismatch(what: str) -> Anomaly:
    """``--reverify`` found an index entry (``other facts for <uri>``, ``another judgement of <sha>``) other than the
    fresh one."""
    source = what.removeprefix("other facts for ") if what.startswith("other facts for ") else ""
    return Anomaly(kind="index-mismatch", sha256=None, message=f"the audit index held {what} than a fresh check "
                   "gives: the index was edited or written by a faulty version; the report uses the fresh check, and "
                   "the entry is replaced", source=source)
