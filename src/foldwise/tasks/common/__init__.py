"""What the task packages share: the Task interface (base.py), the registry (registry.py), photo reading
(imagefolder.py), CSV checks (tables.py), the numpy resize (imaging.py), shared losses, synthetic-data
helpers and scikit-learn scorers."""
