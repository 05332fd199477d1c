"""What every layer uses: the generic params loader (the keys are declared in ``foldwise.params``), one-line
errors, atomic writes, the dvclive logger. Knows nothing of params, tasks, engine or stages
(tests/test_params_decl.py)."""
