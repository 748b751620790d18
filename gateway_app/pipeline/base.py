"""The interface every pipeline stage shares, like a gateway plugin.

A stage is built with its section of gateway.yaml and the collaborators it needs
(pipeline.build_stages). ``before`` may end the chain: by returning a response (it
answers) or by raising GatewayProblem (it refuses); the handler and the later stages
then do not run. ``after`` may change the response; it runs, in reverse order, for
every stage whose ``before`` ran, plus the stages marked ``always_after`` (transform,
metrics) so that every response is shaped and counted.

``call_ahead`` lets a stage name the Redis call its ``before`` will make for a cached
principal, so that the authentication stage makes it in the round trip that confirms
the principal (one wait per request instead of one per stage); the answer reaches the
stage as ``ctx.ahead[name]``, with the item it was asked for.
"""


class Stage:
    name = "stage"
    section = None            # the section of conf/gateway.yaml that configures it, if any
    always_after = False

    def call_ahead(self, ctx, request, principal):
        """A (kind, item) call of redis_store.SharedRoundTrips to make ahead, or None."""
        return None

    def before(self, ctx, request):
        return None

    def after(self, ctx, request, response):
        return response
