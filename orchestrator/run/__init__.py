"""`orchestrate run` and `orchestrate env`: containers wired as builds are. The facts
gathered and the wiring planned (``gather``), a run carried out (``execute``), and the
wiring rendered for the tools that start containers themselves (``render``)."""
