"""Where the historian's tenant folders live: the local disk by default, or any pyarrow (or fsspec) filesystem,
S3-compatible object storage among them, named by `TAEHWA_HISTORIAN_URL`.

The layout is the same everywhere (`docs/historian-layout.md`): `<tenant>/manifest.json`, `<tenant>/latest.parquet`
and `<tenant>/day=…/….parquet`. What must stay on the writer's own disk stays there whatever the URL: the
write-ahead log, the writer's lock, files being written, and a bounded cache of remote files. Data files never
change once written and have unique names, so a cached copy is never stale: queries read local copies with DuckDB
at local speed, and only a file a query has not seen before is fetched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from taehwa.core.errors import InvalidInput, Unavailable
from taehwa.historian.durable import atomic_write, publish

log = logging.getLogger(__name__)
FETCH_THREADS = 8  # remote files fetched at once for one query


def open_filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and the base path inside it, from a URL: a local path or file://, s3://bucket/prefix (with
    pyarrow's options as query parameters, e.g. ?endpoint_override=host:9000&scheme=http), or any other scheme
    pyarrow knows (gs://, hdfs://, abfs://) or, when fsspec is installed, any fsspec scheme."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return pafs.LocalFileSystem(), str(Path(parts.path if parts.scheme else url).resolve())
    # an SDK looking for credentials on a cloud's metadata service would call outside the operator's network
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    try:
        fs, base = pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as exc:
        try:
            import fsspec  # optional: other schemes through fsspec
        except ImportError:
            raise InvalidInput(
                f"cannot open historian storage {redact(url)}: {_without_secrets(str(exc), url)}",
                where="setting TAEHWA_HISTORIAN_URL",
            ) from None
        options = dict(parse_qsl(parts.query))
        try:
            ffs = fsspec.filesystem(parts.scheme, **options)
        except (ValueError, ImportError, TypeError) as fexc:  # unknown scheme, its package missing, bad options
            raise InvalidInput(
                f"cannot open historian storage {redact(url)}: {_without_secrets(str(fexc), url)}",
                where="setting TAEHWA_HISTORIAN_URL",
            ) from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
        base = parts.netloc + parts.path
    return fs, base.rstrip("/")


def _secret(key: str) -> bool:
    return any(word in key.lower() for word in ("secret", "key", "token", "password"))


def _without_secrets(text: str, url: str) -> str:
    """A message with the URL's secret values blotted out (libraries quote the URL they were given)."""
    parts = urlsplit(url)
    for key, value in parse_qsl(parts.query):
        if _secret(key) and value:
            text = text.replace(value, "***")
    if parts.password:
        text = text.replace(parts.password, "***")
    return text


def redact(url: str) -> str:
    """A URL fit for logs and messages: any password or secret in it replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{k}={'***' if _secret(k) else v}" for k, v in parse_qsl(parts.query))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Storage:
    """The tenant folders of one historian, on a local folder or a remote filesystem, plus the writer's own
    local folder (staging for files being written, and the cache of remote files)."""

    def __init__(
        self, local_root: Path, url: str | None = None, *, cache_bytes: int = 2 << 30, writer: bool = True
    ) -> None:
        self.local_root = local_root
        self.url = url
        if url is None:
            self.fs: pafs.FileSystem = pafs.LocalFileSystem()
            self.base = str(local_root.resolve())
        else:
            self.fs, self.base = open_filesystem(url)
        self.remote = not isinstance(self.fs, pafs.LocalFileSystem)
        # the writer's cache outlives restarts; each reader process (an API follower, the CLI) has its own, since
        # one process's eviction must not remove a file another is reading
        self.cache_dir = local_root / "_cache" / ("writer" if writer else f"reader-{os.getpid()}")
        self._own_cache = not writer
        self.cache_bytes = cache_bytes
        self._cache_lock = threading.Lock()
        self._cached: dict[str, tuple[int, float]] = {}  # cache path → (bytes, last used, Unix time)
        self._pinned: dict[str, int] = {}
        if self.remote:
            self._forget_dead_readers()
            self._scan_cache()
        else:
            Path(self.base).mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        """Where the files are, for status pages and messages (no secrets)."""
        return redact(self.url) if self.url else self.base

    def _full(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    # -- small files: manifests, snapshots, leases -----------------------------------------------------------
    def tenants(self) -> list[str]:
        """The tenant folders present (names not starting with '_')."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        except OSError as exc:
            raise Unavailable(
                f"historian storage {self.describe()}: cannot list the tenants: "
                f"{_without_secrets(str(exc), self.url or '')}",
                where="historian",
            ) from None
        return sorted(
            i.base_name for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith(("_", "."))
        )

    def read(self, rel: str) -> bytes | None:
        """A small file's bytes, or None when it does not exist."""
        if not self.remote:
            try:
                return Path(self._full(rel)).read_bytes()
            except FileNotFoundError:
                return None
        try:
            with self.fs.open_input_stream(self._full(rel)) as fh:
                return bytes(fh.read())
        except FileNotFoundError:  # what pyarrow (and fsspec through it) raise for a missing object
            return None
        except OSError as exc:
            raise Unavailable(
                f"historian storage {self.describe()}: cannot read {rel}: {exc}", where="historian"
            ) from None

    def write(self, rel: str, data: bytes) -> None:
        """Replace a small file whole: readers see the old bytes or the new ones (rename on disk; one PUT on
        object storage, which never shows part of an object)."""
        if not self.remote:
            path = Path(self._full(rel))
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
            return
        try:
            with self.fs.open_output_stream(self._full(rel)) as fh:
                fh.write(data)
        except OSError as exc:
            raise Unavailable(
                f"historian storage {self.describe()}: cannot write {rel}: {exc}", where="historian"
            ) from None

    def stamp(self, rel: str) -> int | None:
        """A cheap change stamp of a local file (its mtime); None on remote storage (read it to know)."""
        if self.remote:
            return None
        try:
            return os.stat(self._full(rel)).st_mtime_ns
        except FileNotFoundError:
            return None

    def delete(self, rel: str) -> None:
        """Remove a file; a missing one is not an error."""
        if not self.remote:
            Path(self._full(rel)).unlink(missing_ok=True)
            return
        try:
            self.fs.delete_file(self._full(rel))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise Unavailable(
                f"historian storage {self.describe()}: cannot delete {rel}: {exc}", where="historian"
            ) from None
        self._evict(self._cache_path(rel))

    # -- data files ------------------------------------------------------------------------------------------
    def staging(self, tenant: str) -> Path:
        """A local folder for files being written (on the same disk as the store when the store is local, so
        publishing is a rename)."""
        path = self.local_root / "_staging" / tenant
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_staging(self) -> None:
        """Remove files a crash left half-written (the writer does this at start)."""
        shutil.rmtree(self.local_root / "_staging", ignore_errors=True)

    def put(self, tmp: Path, rel: str) -> int:
        """Publish a finished local file under `rel`; returns its size. On remote storage the file is uploaded
        and kept in the cache: the writer never fetches its own files back."""
        size = tmp.stat().st_size
        if not self.remote:
            publish(tmp, Path(self._full(rel)))
            return size
        try:
            with open(tmp, "rb") as src, self.fs.open_output_stream(self._full(rel)) as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
        except OSError as exc:
            raise Unavailable(
                f"historian storage {self.describe()}: cannot upload {rel}: {exc}", where="historian"
            ) from None
        cached = self._cache_path(rel)
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, cached)
        self._note_cached(cached, size)
        return size

    @contextlib.contextmanager
    def local_paths(self, rels: list[str]) -> Iterator[list[str]]:
        """Local paths of these data files for the length of a block: the files themselves on a local store,
        cached copies (fetched when missing, kept from eviction meanwhile) on a remote one."""
        if not self.remote:
            yield [self._full(r) for r in rels]
            return
        paths = [self._cache_path(r) for r in rels]
        with self._cache_lock:
            for p in paths:
                self._pinned[str(p)] = self._pinned.get(str(p), 0) + 1
        try:
            missing = []
            for rel, path in zip(rels, paths, strict=True):
                if path.exists():
                    self._note_cached(path, None)
                else:
                    missing.append((rel, path))
            if len(missing) > 1:  # a year's trend from a cold cache is hundreds of files: fetch them side by side
                with ThreadPoolExecutor(min(FETCH_THREADS, len(missing))) as pool:
                    list(pool.map(lambda item: self._fetch(*item), missing))
            elif missing:
                self._fetch(*missing[0])
            yield [str(p) for p in paths]
        finally:
            with self._cache_lock:
                for p in paths:
                    left = self._pinned.get(str(p), 1) - 1
                    if left:
                        self._pinned[str(p)] = left
                    else:
                        self._pinned.pop(str(p), None)
            self._trim()

    # -- the cache of remote files ---------------------------------------------------------------------------
    def _cache_path(self, rel: str) -> Path:
        return self.cache_dir / rel

    def close(self) -> None:
        """A reader's cache goes with it."""
        if self.remote and self._own_cache:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def _forget_dead_readers(self) -> None:
        """Remove the caches of reader processes that are gone (killed before they could remove them)."""
        for path in (self.local_root / "_cache").glob("reader-*"):
            pid = path.name.removeprefix("reader-")
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(path, ignore_errors=True)

    def _scan_cache(self) -> None:
        if not self.cache_dir.exists():
            return
        for path in self.cache_dir.rglob("*"):
            if path.is_file():
                if path.name.endswith(".part"):
                    path.unlink(missing_ok=True)
                    continue
                st = path.stat()
                self._cached[str(path)] = (st.st_size, st.st_mtime)

    def _fetch(self, rel: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self.fs.open_input_stream(self._full(rel)) as src, open(part, "wb") as dst:
                while chunk := src.read(8 << 20):
                    dst.write(chunk)
            os.replace(part, path)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise Unavailable(
                f"historian storage {self.describe()}: cannot fetch {rel}: {exc}", where="historian"
            ) from None
        self._note_cached(path, path.stat().st_size)

    def _note_cached(self, path: Path, size: int | None) -> None:
        with self._cache_lock:
            old = self._cached.get(str(path))
            if size is None:
                size = old[0] if old else path.stat().st_size
            self._cached[str(path)] = (size, time.time())  # the clock of the file times read at start

    def _trim(self) -> None:
        """Remove the least recently used unpinned copies until the cache fits its size."""
        with self._cache_lock:
            total = sum(size for size, _ in self._cached.values())
            if total <= self.cache_bytes:
                return
            for key, (size, _) in sorted(self._cached.items(), key=lambda kv: kv[1][1]):
                if total <= self.cache_bytes:
                    break
                if key in self._pinned:
                    continue
                Path(key).unlink(missing_ok=True)
                del self._cached[key]
                total -= size

    def _evict(self, path: Path) -> None:
        with self._cache_lock:
            if str(path) not in self._pinned:
                path.unlink(missing_ok=True)
                self._cached.pop(str(path), None)

    def cache_stats(self) -> dict[str, int]:
        """Files and bytes held in the local cache of remote files."""
        with self._cache_lock:
            return {"files": len(self._cached), "bytes": sum(s for s, _ in self._cached.values())}
