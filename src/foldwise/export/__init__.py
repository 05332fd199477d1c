"""``foldwise export OUT``: fold models, vendored inference code and ``predict.py`` in a folder
ready for ``kaggle datasets create -p OUT`` (see docs/how-to/kaggle.md)."""
