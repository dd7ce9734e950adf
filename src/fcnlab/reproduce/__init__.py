"""``fcnlab reproduce``: the whole homework on the course data in one command (:mod:`~fcnlab.reproduce.plan`:
what runs; :mod:`~fcnlab.reproduce.run`: running it, resuming and the budget; :mod:`~fcnlab.reproduce.state`:
what is done)."""
