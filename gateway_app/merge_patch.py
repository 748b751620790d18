"""What every PATCH body means: a JSON merge patch (RFC 7396) of the resource.

A member set to null is deleted, an object is merged member by member (recursively),
anything else (arrays included) replaces the current value. Every PATCH endpoint goes
through ``patched``, so a nested object behaves the same in all of them.
"""

MEDIA_TYPE = "application/merge-patch+json"


def merge_patch(target, patch):
    """RFC 7396 section 2's MergePatch(Target, Patch); neither argument is changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def patched(current, patch):
    """The members ``patch`` names, each with its value once the patch is applied to
    ``current`` (a resource's editable members): a nested object merged into the current
    one, None for a deleted member. The caller validates and stores them."""
    merged = merge_patch(current, patch)
    return {name: merged.get(name) for name in patch}
