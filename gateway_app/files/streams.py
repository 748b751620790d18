"""Adapters between the gateway's generators and the file objects a store reads."""
import io


class ChunksReader(io.RawIOBase):
    """A readable binary stream over an iterable of ``bytes`` (or ``str``, encoded UTF-8),
    pulling one chunk at a time: a generated CSV is uploaded as it is written."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.pending = b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


class TooLarge(Exception):
    """The stream went past the size it was allowed."""

    def __init__(self, limit):
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


class BoundedReader(io.RawIOBase):
    """A stream passed through that raises TooLarge once more than ``limit`` bytes came
    out of it, so a store never finishes writing an oversized file."""

    def __init__(self, stream, limit):
        self.stream = stream
        self.limit = limit
        self.count = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self.stream.read(len(buffer))
        self.count += len(chunk)
        if self.count > self.limit:
            raise TooLarge(self.limit)
        buffer[:len(chunk)] = chunk
        return len(chunk)
