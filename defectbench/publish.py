"""``defectbench publish``: push a built dataset folder to the Hugging Face Hub (SPEC 2).

What goes up is exactly what :func:`stage` copies into a staging folder: ``data/*.parquet`` (every
shard the manifest counts), ``README.md`` (the dataset card, whose YAML gives the Hub its configs,
splits and features) and ``manifest.json`` (recipe, seed, source, counts, fingerprint). Nothing else
in the dataset folder (a stray file, a ``.partial`` leftover) is uploaded. Before anything is staged
the dataset is verified (:func:`defectbench.verify.verify_dataset`: the fingerprint recomputed from
the parquet files, or a stored verification of the same bytes), so a swapped file is never published.

The staging folder is made by defectbench and carries its ownership marker (never uploaded); an
existing staging path is replaced only when it is such a folder (:mod:`defectbench.ownership`):
``--staging .`` or ``--staging datasets`` is refused with one line, and nothing is removed. ``--dry-run`` stops after
staging and prints the plan, so the staged folder can be inspected, or loaded with
``datasets.load_dataset(staged)``, before anything leaves the machine.

The push itself is ``huggingface_hub``: ``HfApi.create_repo(repo_type="dataset", exist_ok=True)`` and
``HfApi.upload_folder`` of the staged folder. The token comes from where ``huggingface_hub`` looks for
it (``HF_TOKEN``, ``hf auth login``) unless one is given. Failures a user can fix (no network, offline
mode, no or wrong token, a bad repo id) are one :class:`DefectbenchError` line each.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path


from .core import SPLITS, DefectbenchError
from .dataset import MANIFEST, check_dataset, read_manifest
from .ownership import MARKER, mark, remove_owned

CARD = "README.md"


@dataclass
class Plan:
    """What a publish uploads: files relative to the staged folder, with sizes."""

    dataset: Path
    staged: Path
    repo: str
    files: list[tuple[str, int]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    private: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def describe(self) -> list[str]:
        """The plan as printable lines (the dry run's output)."""
        visibility = "private" if self.private else "public"
        lines = [f"would create {visibility} dataset repo {self.repo} (if it does not exist) and upload "
                 f"{len(self.files)} files, {_size(self.total_bytes)}, from {self.staged}:"]
        lines += [f"  {name}  ({_size(size)})" for name, size in self.files]
        lines.append("rows: " + ", ".join(f"{s} {n}" for s, n in self.rows.items()) + f"; fingerprint {self.fingerprint}")
        return lines


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def check_repo_id(repo: str) -> str:
    """``org/name`` as the Hub accepts it, else a one-line error (before any network use)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if repo.count("/") != 1:
        raise DefectbenchError(f"--repo {repo!r}: give the Hub dataset repo as ORG/NAME (or USER/NAME)")
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise DefectbenchError(f"--repo {repo!r} is not a valid Hub repo id: {str(exc).splitlines()[0]}") from None
    return repo


def upload_files(dataset: Path) -> list[Path]:
    """Files of a dataset folder that are published, relative to it, after verifying them against the manifest."""
    from .verify import verify_dataset

    dataset = check_dataset(dataset)
    verify_dataset(dataset)  # counts, then the fingerprint recomputed (or a stored verification of these bytes)
    files: list[Path] = []
    for split in SPLITS:
        files += [f.relative_to(dataset) for f in sorted((dataset / "data").glob(f"{split}-*-of-*.parquet"))]
    if not (dataset / CARD).is_file():
        raise DefectbenchError(f"{dataset}: the dataset card {CARD} is missing; rebuild the dataset")
    return files + [Path(CARD), Path(MANIFEST)]


def stage(dataset: str | Path, staged: str | Path, repo: str, private: bool = False) -> Plan:
    """Copy exactly the files to upload into ``staged`` (replaced if it exists) and return the plan."""
    dataset, staged = Path(dataset), Path(staged)
    files = upload_files(dataset)
    if staged.resolve() == dataset.resolve() or dataset.resolve() in staged.resolve().parents:
        raise DefectbenchError(f"the staging folder {staged} must lie outside the dataset folder {dataset}")
    remove_owned(staged, ("staging",), reads=[dataset], why=" (--staging)")
    staged.mkdir(parents=True)
    mark(staged, "staging")
    manifest = read_manifest(dataset)
    plan = Plan(dataset=dataset, staged=staged, repo=repo, fingerprint=manifest["fingerprint"], private=private,
                rows={s: manifest["splits"].get(s, {}).get("samples", 0) for s in SPLITS})
    for rel in files:
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dataset / rel, target)
        plan.files.append((rel.as_posix(), target.stat().st_size))
    return plan


def default_staging(repo: str) -> Path:
    return Path("build") / "publish" / repo.replace("/", "__")


def _is_network_error(exc: BaseException) -> bool:
    """True for "the Hub cannot be reached". huggingface_hub's HTTP client has changed (requests, httpx,
    httpx2) and wraps transport errors differently per version, so the exception chain is matched by
    the transport error families' names instead of importing one client's classes."""
    names = {"ConnectError", "ConnectionError", "TransportError", "NetworkError", "Timeout", "TimeoutException",
             "ConnectTimeout", "ReadTimeout", "ProxyError", "OfflineModeIsEnabled", "gaierror"}
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, TimeoutError)) or names & {c.__name__ for c in type(exc).__mro__}:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _hub_error(exc: Exception, repo: str) -> DefectbenchError:
    """One line for a failed Hub call the user can act on."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return DefectbenchError("cannot publish: HF_HUB_OFFLINE is set (offline mode); unset it to reach the Hub")
    if _is_network_error(exc):
        return DefectbenchError(f"cannot reach the Hugging Face Hub (no network?): {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else 'connection failed'}; "
                                "nothing was uploaded (try --dry-run to stage the folder offline)")
    if isinstance(exc, LocalTokenNotFoundError):
        return DefectbenchError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return DefectbenchError(f"the Hub refused the token for {repo} (HTTP {status}): set HF_TOKEN or run "
                                    "`hf auth login` with a token that may write to that namespace")
        return DefectbenchError(f"the Hub answered an error for {repo}: {str(exc).splitlines()[0]}")
    raise exc


def publish(dataset: str | Path, repo: str, *, dry_run: bool = False, staging: str | Path | None = None,
            private: bool = False, token: str | None = None, message: str | None = None) -> Plan:
    """Stage ``dataset`` and (unless ``dry_run``) push the staged folder to the Hub dataset repo ``repo``."""
    repo = check_repo_id(repo)
    plan = stage(dataset, staging or default_staging(repo), repo, private)
    if dry_run:
        return plan
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(plan.staged), ignore_patterns=[MARKER],
                          commit_message=message or f"defectbench dataset {plan.fingerprint[:12]}")
    except Exception as exc:  # noqa: BLE001 - every user-fixable Hub failure becomes one line; others re-raise
        raise _hub_error(exc, repo) from None
    return plan
