"""A plain folder's side of an archive, straight through ``os``: a rename is one system
call, a copy reads and writes raw file descriptors, and fsspec is not even imported.
What the archive makes here is its owner's alone: folders FOLDER_MODE, documents FILE_MODE.
Paths are the archive's, already checked (`Archive.path`)."""

from __future__ import annotations

import io
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from basecone_migrate.storage.hashing import copy_hashing, require_sha256
from basecone_migrate.storage.keys import KEY, TMP_PREFIX, Stored, document_key

#: Modes of what the archive makes on a local disk: its owner's alone.
FOLDER_MODE = 0o700
FILE_MODE = 0o600
_names = itertools.count()


def private_folders(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, each folder it makes private (FOLDER_MODE):
    ``makedirs`` gives its mode to the last folder only. Folders already there are left as
    they are."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        private_folders(parent)
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def create_temporary(folder: str) -> tuple[str, int]:
    """A new, exclusively created temporary file in ``folder``: (path, descriptor)."""
    name = f"{TMP_PREFIX}{os.getpid()}-{next(_names)}"
    while True:
        path = os.path.join(folder, name)
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 FILE_MODE)
        except FileExistsError:  # left by a dead process with the same pid
            name = TMP_PREFIX + uuid.uuid4().hex


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write(source: IO[bytes], folder: str, administration_id: int, expect_sha256: str | None,
          buffer: bytearray) -> Stored:
    """Stream ``source`` into ``folder`` (the administration's): a raw, exclusively created,
    private file, no buffering between us and the disk, renamed into place when its bytes
    match (`Archive.write`)."""
    temporary, descriptor = create_temporary(folder)
    try:
        with open(descriptor, "wb", buffering=0) as target:
            size, sha256 = copy_hashing(source, target, buffer)
        require_sha256(expect_sha256, sha256)
        key = document_key(administration_id, sha256)
        os.replace(temporary, os.path.join(folder, sha256))
    except BaseException:
        discard(temporary)
        raise
    return Stored(key, size, sha256)


def copy(source_path: str, target_folder: Callable[[], str], target_path: str, sha256: str,
         buffer: bytearray) -> int:
    """The hot path between two local roots: raw descriptors, one buffer, one pass. The
    target's folder is asked for once the source is open."""
    source = os.open(source_path, os.O_RDONLY)
    temporary: str | None = None
    try:
        temporary, target = create_temporary(target_folder())
        try:  # raw, unbuffered wrappers: each read and write is one system call
            size, digest = copy_hashing(io.FileIO(source, closefd=False),
                                        io.FileIO(target, "w", closefd=False), buffer)
        finally:
            os.close(target)
        require_sha256(sha256, digest)
        os.replace(temporary, target_path)
        return size
    except BaseException:
        if temporary is not None:
            discard(temporary)
        raise
    finally:
        os.close(source)


def rename_folder(source: str, target: str) -> bool:
    """Rename a whole folder (one filesystem; the target absent or empty), private from here
    on. False when it cannot be done that way."""
    try:
        os.rename(source, target)
    except OSError:  # no folder here, a non-empty one there, another filesystem...
        return False
    try:  # a folder an earlier version made open to all is private from here on
        os.chmod(target, FOLDER_MODE)
    except PermissionError:  # another user's folder: its owner decides
        pass
    return True


def sizes_of(folder: str, keys: list[str]) -> Iterator[int | None]:
    """The size of each document of one administration's folder (None when absent),
    each looked up relative to the folder, opened once."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        for _ in keys:
            yield None
        return
    try:
        for key in keys:
            try:
                yield os.stat(key.rsplit("/", 1)[1], dir_fd=descriptor).st_size
            except FileNotFoundError:
                yield None
    finally:
        os.close(descriptor)


def rename_many(source_folder: str, target_folder: Callable[[], str], administration_id: int,
                keys: list[str]) -> Iterator[tuple[str, OSError | None]]:
    """Rename one administration's documents from its folder into another (one filesystem),
    one system call each; every key is checked first. The target's folder is asked for once
    the source's is open."""
    prefix = f"{administration_id}/"
    for key in keys:
        if not (key.startswith(prefix) and KEY.fullmatch(key)):
            raise ValueError(f"not a document key of administration {administration_id}: {key!r}")
    # Names relative to the two folders, opened once: the kernel resolves no path per
    # document (a third faster than full paths).
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        source = os.open(source_folder, flags)
    except OSError as exc:
        for key in keys:
            yield key, exc
        return
    try:
        target = os.open(target_folder(), flags)
        try:
            for key in keys:
                name = key[len(prefix):]
                try:
                    os.rename(name, name, src_dir_fd=source, dst_dir_fd=target)
                except OSError as exc:
                    yield key, exc
                else:
                    yield key, None
        finally:
            os.close(target)
    finally:
        os.close(source)


def remove_all(remove: Callable[[str], object], keys: list[str], threads: int) -> None:
    """``remove`` each key, in parallel: a thread pool ignores map's chunksize, so each
    thread is handed a slice, not a key."""
    from concurrent.futures import ThreadPoolExecutor

    def remove_chunk(chunk: list[str]) -> None:
        for key in chunk:
            remove(key)

    size = max(1, -(-len(keys) // threads))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(remove_chunk, [keys[i:i + size] for i in range(0, len(keys), size)]))


def remove_empty_folder(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass  # not empty: it still holds documents


def fsync_folder(path: str) -> None:
    """Commit a folder's entries (renames into or out of it); a missing folder has none."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def syncfs(path: str) -> None:
    """Flush the filesystem that holds ``path`` (all of them where syncfs is missing)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    except (OSError, AttributeError):
        pass
    os.sync()
