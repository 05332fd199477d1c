"""What every stage uses: the typed params loader, one-line errors, atomic writes."""
