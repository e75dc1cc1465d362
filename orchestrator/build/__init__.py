"""`orchestrate build` and `orchestrate bake`: the facts gathered and the plan made
(``gather``), a plan remembered between runs (``store``, ``remembered``), a plan carried
out (``execute``), and bake's targets planned and run (``bake``)."""
