"""`orchestrate build` and `orchestrate bake`, from a profile to `docker buildx`: the facts
gathered and the plan made (``gather``), or the plan remembered from the last build
(``remembered``, kept in ``store``), then carried out (``execute``); ``bake`` does the
same for every target of a bake file. Nothing heavy is imported here: a remembered build
imports no pydantic, YAML or Dockerfile parser."""
