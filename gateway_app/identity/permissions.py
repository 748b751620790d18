"""The role/permission matrix, declared in one place.

Views declare the permission they need (``gateway_policy(permission=...)``); the
authorization stage checks it against the caller's role, or an API key's scope.
"""
ROLES = ("owner", "admin", "member", "viewer")
ALL = set(ROLES)
MANAGERS = {"owner", "admin"}
STAFF = {"owner", "admin", "member"}

PERMISSIONS = {
    "dashboard:read": ALL,
    "calls:read": ALL,
    "calls:export": {"admin", "member", "owner"},
    "appointments:read": ALL,
    "appointments:write": STAFF,
    "customers:read": ALL,
    "customers:write": STAFF,
    "attachments:read": ALL,
    "attachments:write": STAFF,
    "analytics:read": ALL,
    "settings:read": ALL,
    "settings:write": MANAGERS,
    "profile:read": ALL,
    "profile:write": ALL,
    "api_keys:manage": MANAGERS,
    "billing:read": MANAGERS,
    "team:read": ALL,
    "team:manage": MANAGERS,
}

DESCRIPTIONS = {
    "dashboard:read": "View the dashboard overview, metrics and activity",
    "calls:read": "List and view calls",
    "calls:export": "Export calls as CSV",
    "appointments:read": "View the calendar and appointments",
    "appointments:write": "Book appointments and change their status",
    "customers:read": "Search and view customers",
    "customers:write": "Create and update customers",
    "attachments:read": "List and download customers' attachments",
    "attachments:write": "Attach files to customers and delete them",
    "analytics:read": "View reports, KPIs and trends",
    "settings:read": "View company settings",
    "settings:write": "Change company settings",
    "profile:read": "View one's own profile",
    "profile:write": "Change one's own profile and password",
    "api_keys:manage": "Create, list and revoke API keys",
    "billing:read": "View invoices, usage and payments",
    "team:read": "List team members",
    "team:manage": "Invite, change roles and remove members",
}

# These act on the calling user, or manage who holds credentials (members, their roles,
# API keys): an API key has no user to answer for the change, and a leaked key must not
# be able to mint more keys or invite an admin, so no scope grants them.
USER_ONLY_PERMISSIONS = {"profile:read", "profile:write", "api_keys:manage", "team:manage"}

# A read-only API key may use these; every other permission needs the `write` scope.
READ_PERMISSIONS = {p for p in PERMISSIONS if p.endswith(":read")}


def role_allows(role, permission):
    return role in PERMISSIONS.get(permission, ())


def scopes_allow(scopes, permission):
    if permission in USER_ONLY_PERMISSIONS:
        return False
    needed = "read" if permission in READ_PERMISSIONS else "write"
    return needed in scopes


def permissions_of(role):
    return sorted(p for p, roles in PERMISSIONS.items() if role in roles)
