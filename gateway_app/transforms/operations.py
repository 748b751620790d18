"""The five operations of Kong's request- and response-transformer, in Kong's order.

Each list of operations runs remove, rename, replace, add, append, in that order, over
one kind of thing (headers, query parameters, top-level JSON fields), seen through a
small adapter so the order and meaning are written once:

- remove: drop the name (every value of it);
- rename: move every value of the old name to the new one, when the old is present
  (a value already under the new name is replaced);
- replace: set the value, only when the name is present;
- add: set the value, only when the name is absent;
- append: add one more value, present or not (headers and query parameters only).
"""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Operations:
    remove: tuple = ()
    rename: tuple = ()    # (old, new) pairs
    replace: tuple = ()   # (name, value) pairs
    add: tuple = ()
    append: tuple = ()

    @classmethod
    def from_config(cls, config):
        config = config or {}
        return cls(remove=tuple(config.get("remove", ())),
                   rename=tuple(config.get("rename", {}).items()),
                   replace=tuple(config.get("replace", {}).items()),
                   add=tuple(config.get("add", {}).items()),
                   append=tuple(config.get("append", {}).items()))

    def __bool__(self):
        return bool(self.remove or self.rename or self.replace or self.add or self.append)

    def apply(self, target):
        """Run the operations over ``target`` (an adapter below); True when one changed it."""
        changed = False
        for name in self.remove:
            if target.has(name):
                target.delete(name)
                changed = True
        for old, new in self.rename:
            if target.has(old):
                target.put(new, target.take(old))
                changed = True
        for name, value in self.replace:
            if target.has(name):
                target.set(name, value)
                changed = True
        for name, value in self.add:
            if not target.has(name):
                target.set(name, value)
                changed = True
        for name, value in self.append:
            target.append(name, value)
            changed = True
        return changed


def environ_key(name):
    """The WSGI environ key of a request header (Content-Type has no HTTP_ prefix)."""
    upper = name.upper().replace("-", "_")
    return upper if upper == "CONTENT_TYPE" else f"HTTP_{upper}"


class EnvironHeaders:
    """A request's headers, in its WSGI environ: one value per name, repeated values
    joined with ', ' as the server joined them (RFC 9110 section 5.3)."""

    def __init__(self, environ):
        self.environ = environ

    def has(self, name):
        return environ_key(name) in self.environ

    def take(self, name):
        return [self.environ.pop(environ_key(name))]

    def put(self, name, values):
        self.environ[environ_key(name)] = ", ".join(values)

    def set(self, name, value):
        self.environ[environ_key(name)] = value

    def delete(self, name):
        self.environ.pop(environ_key(name), None)

    def append(self, name, value):
        key = environ_key(name)
        present = self.environ.get(key)
        self.environ[key] = f"{present}, {value}" if present else value


class ResponseHeaders:
    """A response's werkzeug Headers (case-insensitive, a name may repeat)."""

    def __init__(self, headers):
        self.headers = headers

    def has(self, name):
        # ``in`` raises and catches a KeyError for an absent name (microseconds); getlist does not
        return bool(self.headers.getlist(name))

    def take(self, name):
        values = self.headers.getlist(name)
        del self.headers[name]
        return values

    def put(self, name, values):
        del self.headers[name]
        for value in values:
            self.headers.add(name, value)

    def set(self, name, value):
        self.headers[name] = value

    def delete(self, name):
        del self.headers[name]

    def append(self, name, value):
        self.headers.add(name, value)


class QueryPairs:
    """A query string's (name, value) pairs, in order; a name may repeat."""

    def __init__(self, pairs):
        self.pairs = pairs

    def has(self, name):
        return any(key == name for key, _ in self.pairs)

    def take(self, name):
        values = [value for key, value in self.pairs if key == name]
        self.delete(name)
        return values

    def put(self, name, values):
        self.delete(name)
        self.pairs.extend((name, value) for value in values)

    def set(self, name, value):
        self.put(name, [value])

    def delete(self, name):
        self.pairs[:] = [(key, value) for key, value in self.pairs if key != name]

    def append(self, name, value):
        self.pairs.append((name, value))


class JsonFields:
    """The top-level fields of a JSON object (no append: the schema offers none for bodies)."""

    def __init__(self, document):
        self.document = document

    def has(self, name):
        return name in self.document

    def take(self, name):
        return [self.document.pop(name)]

    def put(self, name, values):
        self.document[name] = values[0]

    def set(self, name, value):
        self.document[name] = value

    def delete(self, name):
        del self.document[name]

    def append(self, name, value):
        raise TypeError("JSON fields take no append")
