"""What the competition modules share: the Task interface, the registry, CSV and id helpers."""
