"""Which namespaces an event invalidates: the rules of ``caching.invalidation`` and
``caching.cascades``, with wildcard patterns (fnmatch: ``settings*``, ``*``) in targets
and in event names."""
from fnmatch import fnmatchcase


class InvalidationRules:
    def __init__(self, config):
        self.namespaces = sorted(config["namespaces"])
        self.invalidation = config["invalidation"]
        self.cascades = config.get("cascades", {})
        # event name -> its namespaces: a function of the policy alone, worked out (by
        # fnmatch over every rule) the first time an event of that name is heard
        self.by_event = {}

    def expand(self, pattern):
        """The namespaces a name or wildcard pattern stands for."""
        return [name for name in self.namespaces if fnmatchcase(name, pattern)]

    def with_cascades(self, namespaces):
        """``namespaces`` plus every namespace depending on them, transitively (cycles allowed)."""
        result, waiting = set(), list(namespaces)
        while waiting:
            namespace = waiting.pop()
            if namespace in result:
                continue
            result.add(namespace)
            for dependent in self.cascades.get(namespace, []):
                waiting.extend(self.expand(dependent))
        return result

    def namespaces_for_event(self, event_name):
        found = self.by_event.get(event_name)
        if found is None:
            found = self.by_event[event_name] = tuple(self.matched_namespaces(event_name))
        return found

    def matched_namespaces(self, event_name):
        targets = set()
        for rule_event, rule_targets in self.invalidation.items():
            if fnmatchcase(event_name, rule_event):
                for target in rule_targets:
                    targets.update(self.expand(target))
        return sorted(self.with_cascades(targets))

    def select(self, namespace=None, pattern=None):
        """Namespaces an admin purge names: one, a pattern, both (intersection) or all."""
        chosen = set(self.namespaces)
        if namespace is not None:
            chosen &= {namespace}
        if pattern is not None:
            chosen &= set(self.expand(pattern))
        return sorted(chosen)
