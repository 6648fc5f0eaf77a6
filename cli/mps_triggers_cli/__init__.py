"""``mps-triggers``: the operator command (backfill, reprocess, redrive, replay) on the same core as the functions.

It reads the functions' environment variables (and ``--env-file``), so routes, the recursion guard, the output
layout and SessionIds are computed exactly as the live path computes them. Never part of a layer: its own
dependencies are the ``cli`` extra (``pip install "mps-triggers[cli]"``).

Exit status (DESIGN.md): 0 everything succeeded or was skipped on purpose, 1 some object or message failed (named in
the output or the report), 2 a usage or configuration error (the variable or argument named).
"""
