"""The HTML pages, one package per area: ``<area>/urls.py`` (routes), ``views.py`` (thin views: validate ->
service or selector -> render) and ``forms.py`` where the area has forms.

Areas (the same names as annotation/api/, annotation/services/ and annotation/selectors/):
  catalog    the product list and the product page
  taxonomy   the taxonomy pages (admins): tree, search, create, rename, move, alias, merge, settings
  review     the review page and its actions, claim or undo from the product page
  models     the models page (admins): versions, activation, retraining, queue strategy
  export     the exports page (admins)
  dashboard  /dashboard/ (charts drawn as inline SVG)
  accounts   home redirect, login, logout, the /healthz probe (wired in tagstudio/urls.py)

Shared here: access.py (role mixins); annotation/urls.py includes every area.
"""
