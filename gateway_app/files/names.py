"""Names of files as clients see them: sanitised on the way in, quoted on the way out."""
import unicodedata
import urllib.parse

from werkzeug.utils import secure_filename

MAX_FILENAME = 200


def sanitised_filename(raw, fallback="file"):
    """A name safe on every filesystem and in a header: no directories, no control or
    shell-special characters, ASCII (accents folded), at most MAX_FILENAME characters,
    the extension kept."""
    folded = unicodedata.normalize("NFKD", raw or "").encode("ascii", "ignore").decode("ascii")
    name = secure_filename(folded.replace("\\", "/").rsplit("/", 1)[-1])
    if not name:
        name = fallback
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:20] if dot else ""
        name = (stem if dot else name)[:MAX_FILENAME - len(extension) - 1].rstrip(".") + (
            f".{extension}" if extension else "")
    return name


def attachment_disposition(filename):
    """``Content-Disposition: attachment`` with the name, ASCII and RFC 5987 forms."""
    ascii_name = filename.encode("ascii", "ignore").decode("ascii").replace('"', "") or "download"
    return (f'attachment; filename="{ascii_name}"; '
            f"filename*=UTF-8''{urllib.parse.quote(filename, safe='')}")
