"""``python -m foldwise.export OUT``: fold models, vendored inference code and ``predict.py`` in a folder
ready for ``kaggle datasets create -p OUT`` (see README, "Export to Kaggle")."""
