"""The REST API (/api/v1/), one package per area: ``<area>/urls.py`` (routes), ``views.py`` (thin DRF views:
validate -> service or selector -> respond) and ``serializers.py`` (input and output shapes).

Areas (the same names as annotation/views/, annotation/services/ and annotation/selectors/):
  catalog   products (list, detail by external id), catalog imports
  taxonomy  tags: list, create, rename, move, (de)activate, aliases, merge
  review    claim the next product, submit, release, undo
  models    model versions and activation, training jobs, suggestion refresh, queue strategy
  export    the approved-tags export and background export jobs
  accounts  me, tokens, users
(The dashboard has HTML pages only.)

Shared plumbing stays here: errors.py (the one JSON error shape), permissions.py (roles), pagination.py
(keyset pages), filters.py (strict filter sets), limits.py (body limits, throttles), converters.py (path
converters), schema.py (OpenAPI hooks), urls.py (includes every area).
"""
