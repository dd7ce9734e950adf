"""The command line: :mod:`~fcnlab.cli.main` (the ``fcnlab`` program: parsing, dispatch, one-line errors) and
one module per command (``classify``, ``segment``, ``miou``, ``compare``, ``report``, ``demo``, ``bench``,
``export``), each parsing its arguments, calling the stage that does the work and printing the result.
:mod:`~fcnlab.cli.common` and :mod:`~fcnlab.cli.arguments` hold what several commands share.
"""
