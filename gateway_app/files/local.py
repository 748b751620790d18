"""``file:///path``: a directory on this machine's disk (development, or one server)."""
import datetime as dt
import os
import shutil
import uuid

from .store import CHUNK_SIZE, FileMissing, FileStore, StorageUnavailable, StoredObject, checked_key


class LocalFileStore(FileStore):
    ephemeral_on_platform = True

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.description = f"file://{self.root}"

    def path_of(self, key):
        return os.path.join(self.root, *checked_key(key).split("/"))

    def save(self, key, stream, content_type=None):
        target = self.path_of(key)
        partial = f"{target}.{uuid.uuid4().hex}.part"
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(partial, "wb") as handle:
                shutil.copyfileobj(stream, handle, CHUNK_SIZE)
                size = handle.tell()
            os.replace(partial, target)   # a reader never sees a half-written file
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc.strerror}") from exc
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return size

    def open(self, key):
        try:
            return open(self.path_of(key), "rb")
        except FileNotFoundError:
            raise FileMissing(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc.strerror}") from exc

    def delete(self, key):
        try:
            os.remove(self.path_of(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key}: {exc.strerror}") from exc

    def exists(self, key):
        return os.path.isfile(self.path_of(key))

    def list(self, prefix):
        found = []
        # only the directory the prefix names is walked, not the whole store
        top = os.path.join(self.root, *prefix.split("/")[:-1]) if "/" in prefix else self.root
        for directory, _dirs, names in os.walk(top):
            for name in names:
                if name.endswith(".part"):
                    continue
                path = os.path.join(directory, name)
                key = os.path.relpath(path, self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    stat = os.stat(path)
                    found.append(StoredObject(key, stat.st_size, dt.datetime.fromtimestamp(
                        stat.st_mtime, tz=dt.timezone.utc)))
        return sorted(found, key=lambda item: item.key)
