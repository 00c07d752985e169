"""The names other tools rely on (DESIGN.md, "Contracts other tools rely on"): the labels and
annotations on every object the reconciler creates, and its server-side apply field manager.

One place for them, imported by rendering (which sets them), the cluster layer (which selects
and prunes by them) and planning (which compares by them). Nothing here imports anything.
"""

FIELD_MANAGER = "image-factory"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "image-factory"
BUILD_LABEL = "imagefactory.dev/build"
POOL_LABEL = "imagefactory.dev/pool"
TEAM_LABEL = "imagefactory.dev/team"
COMPONENT_LABEL = "imagefactory.dev/component"

REVISION_ANNOTATION = "imagefactory.dev/revision"  # the Git commit an object came from
# "<template name>@<version>": the template (or built-in renderer) an object was rendered from.
TEMPLATE_ANNOTATION = "imagefactory.dev/template"
# sha256 (first 16 hex) of the rendered Pipeline: a template edited without a version bump still
# changes every PipelineRun name that uses it.
TEMPLATE_DIGEST_ANNOTATION = "imagefactory.dev/template-digest"
SOURCE_ANNOTATION = "imagefactory.dev/source"  # the repository file a build or pool came from
# sha256 of the object as last applied (without volatile annotations): lets a pass see that a
# field was removed from the desired object, which a "desired is contained in live" check cannot.
APPLIED_HASH_ANNOTATION = "imagefactory.dev/applied-hash"
