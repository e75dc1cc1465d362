"""Planning: facts and a profile in, a frozen plan out (``build``); its data (``model``,
``facts``), how RUN steps are wired (``wiring``, ``settings``, ``uvlock``) and how a plan
is shown (``render``)."""
