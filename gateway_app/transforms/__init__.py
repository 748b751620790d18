"""Request and response transforms (the seed's stage 7), declared per service and route.

The stage that runs them is pipeline/transforms.py, with the policy schema; this package
holds what they do to a request and to a response.
"""
from .operations import Operations
from .request import RequestTransform
from .response import ResponseTransform

__all__ = ["Operations", "RequestTransform", "ResponseTransform"]
