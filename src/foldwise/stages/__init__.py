"""One module per DVC stage: ``python -m foldwise.stages.<stage>``; paths come from dvc.yaml."""
