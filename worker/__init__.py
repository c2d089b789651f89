"""What a worker does: arq settings, the chunk task, planning, provider client, error policy."""
