"""What is true of this machine, its engine and its builder, gathered before planning
(``host``, ``builder``, ``container``) and handed to it as frozen data (``model``).
Nothing here imports planning: facts are the same whoever plans with them."""
