"""Admin: the service registry (list, register, unregister instances; check health now)."""
from flask import current_app
from marshmallow import Schema, fields, validate
from redis.exceptions import RedisError

from gateway_app.db import Session
from gateway_app.discovery.registry import InvalidInstance
from gateway_app.audit import audit
from gateway_app.errors import GatewayProblem
from gateway_app.pipeline.declarations import ADMIN, gateway_policy
from gateway_app.services.operations import describe_service

from . import blp


class InstanceOut(Schema):
    id = fields.String()
    address = fields.String(metadata={"description": "as registered: http(s)://host:port, or host:port"})
    url = fields.String(allow_none=True)
    check = fields.String(validate=validate.OneOf(["http", "tcp"]))
    source = fields.String(validate=validate.OneOf(["config", "admin"]))
    healthy = fields.Boolean()
    checked_at = fields.Float(allow_none=True, metadata={"description": "Unix time of the last check."})
    detail = fields.String()


class ServiceOut(Schema):
    service = fields.String()
    version = fields.String()
    mode = fields.String(validate=validate.OneOf(["local", "remote"]))
    instances = fields.List(fields.Nested(InstanceOut))


class ServiceList(Schema):
    data = fields.List(fields.Nested(ServiceOut))


class InstanceIn(Schema):
    url = fields.String(required=True, metadata={
        "description": "http(s)://host:port (HTTP health check) or host:port (TCP connect check)"})


def discovery():
    return current_app.extensions["gateway"].pipeline.stage("service_discovery")


def known_service(service):
    registry = discovery().registry
    if not registry.knows(service):
        raise GatewayProblem(404, "Not Found", f"There is no service named {service!r}.",
                             service=service)
    return registry


def registry_unavailable(exc):
    return GatewayProblem(503, "Service Unavailable",
                          f"The registry store (Redis) is unavailable: {exc.__class__.__name__}.",
                          service="registry")


# the same description the console shows
describe = describe_service


@blp.route("/registry", methods=["GET"])
@blp.response(200, ServiceList)
@gateway_policy(**ADMIN)
def list_services():
    """Every service, its mode (local or remote) and its instances with their health."""
    registry = discovery().registry
    return {"data": [describe(registry, service) for service in registry.versions]}


@blp.route("/registry/<service>/instances", methods=["GET"])
@blp.response(200, ServiceOut)
@gateway_policy(**ADMIN)
def list_instances(service):
    """One service's instances with their health."""
    return describe(known_service(service), service)


@blp.route("/registry/<service>/instances", methods=["POST"])
@blp.arguments(InstanceIn)
@blp.response(201, InstanceOut)
@blp.alt_response(200, schema=InstanceOut, description="Already registered.")
@gateway_policy(**ADMIN)
def register_instance(body, service):
    """Add a remote instance (201; 200 when already listed)."""
    registry = known_service(service)
    try:
        instance, created = registry.add(service, body["url"])
    except InvalidInstance as exc:
        raise GatewayProblem(422, "Unprocessable Content", str(exc), errors={"url": [str(exc)]})
    except RedisError as exc:
        raise registry_unavailable(exc)
    stage = discovery()
    stage.monitor.ensure_started()
    if created:
        # checked at once: it takes traffic only once a check has passed
        stage.monitor.check(service, [instance])
        audit(Session, "registry.instance_added", "service", service, url=instance.url)
        Session.commit()
    entry = next(item for item in describe(registry, service)["instances"] if item["id"] == instance.id)
    return entry, 201 if created else 200


@blp.route("/registry/<service>/instances/<instance_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(409, description="The instance is listed in the policy file.")
@gateway_policy(**ADMIN)
def unregister_instance(service, instance_id):
    """Remove an instance added through this API."""
    registry = known_service(service)
    configured = [i for i in registry.configured[service] if i.id == instance_id]
    if configured:
        raise GatewayProblem(409, "Conflict", "This instance is listed in the policy file; "
                             "remove it from service_discovery.services there.", service=service)
    try:
        removed = registry.remove(service, instance_id)
    except RedisError as exc:
        raise registry_unavailable(exc)
    if not removed:
        raise GatewayProblem(404, "Not Found", f"The {service} service has no instance {instance_id!r}.",
                             service=service)
    audit(Session, "registry.instance_removed", "service", service, instance_id=instance_id)
    Session.commit()
    return "", 204


@blp.route("/registry/<service>/health-check", methods=["POST"])
@blp.doc(operationId="checkInstancesNow")
@blp.response(200, ServiceOut)
@gateway_policy(**ADMIN)
def check_now(service):
    """Run the active health check of this service's instances now, not at the next interval."""
    registry = known_service(service)
    discovery().monitor.check_all([service])
    return describe(registry, service)
