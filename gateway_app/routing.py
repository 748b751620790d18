"""URL matching that keeps its answers.

werkzeug walks its rule state machine on every request (the gateway has about 70
rules, and the walk was the largest Flask cost of a cached GET beside the bare view's
one rule), yet the match of a path and method cannot change while the rules do not.
The matcher below keeps each successful match; a miss (404, 405, a redirect) is worked
out every time and never kept, so hostile paths cannot fill the memo with failures.
"""
from werkzeug.routing import Map
from werkzeug.routing.matcher import StateMachineMatcher

from .memo import BoundedMemo


class KeptMatches(StateMachineMatcher):
    """werkzeug's matcher, with each (domain, path, method, websocket) -> (rule, values)
    kept until the rules change."""

    def __init__(self, merge_slashes, bound=4096):
        super().__init__(merge_slashes)
        self.kept = BoundedMemo(bound=bound)

    def add(self, rule):
        super().add(rule)
        self.kept.clear()

    def update(self):
        super().update()
        self.kept.clear()

    def match(self, domain, path, method, websocket):
        key = (domain, path, method, websocket)
        found = self.kept.get(key)
        if found is None:   # raises for a miss, which is therefore never kept
            found = self.kept.remember(key, super().match(domain, path, method, websocket))
        rule, values = found
        # a copy: the request keeps it as view_args, which url_value_preprocessors may change
        return rule, dict(values)


class GatewayMap(Map):
    """Flask's URL map, matching through KeptMatches."""

    def __init__(self, rules=None, **kwargs):
        super().__init__(None, **kwargs)
        self._matcher = KeptMatches(self._matcher.merge_slashes)
        for rule_factory in rules or ():
            self.add(rule_factory)
