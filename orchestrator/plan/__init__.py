"""Planning: facts and a profile in, a frozen plan out. Pure: nothing here reads a file,
calls a process or asks the engine. The decisions every command shares (``decisions``)
are made once; a build (``build``, ``handover``, ``steps``), a container's wiring
(``wiring``) and a run (``run``) render them. Data: ``model`` and ``containers``; how a
build plan is shown: ``render``."""
