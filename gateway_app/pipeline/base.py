"""The interface every pipeline stage shares, like a gateway plugin.

A stage reads its own section of gateway.yaml, may answer the request itself in
``before`` (returning a response short-circuits the rest of the chain and the
handler), and may change the response in ``after``. ``after`` runs, in reverse
order, for every stage whose ``before`` ran, plus the stages marked
``always_after`` (transform, metrics) so that every response is shaped and counted.
"""


class Stage:
    name = "stage"
    section = None            # key of conf/gateway.yaml this stage reads
    always_after = False

    def __init__(self, app, policy):
        self.app = app
        self.policy = policy
        self.config = policy.get(self.section, {}) if self.section else {}

    def before(self, ctx, request):
        return None

    def after(self, ctx, request, response):
        return response
